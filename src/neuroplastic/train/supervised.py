"""A plain supervised trainer for datasets: minibatch Adam on any module, any rule beside it.

Classification when the targets are integer class ids (cross-entropy), regression when they
are floats (mean squared error). A rule of the protocol (structural or weight rule) is driven
after every optimizer step, so pruning, growth and Hebbian rules run on datasets with no
change here. Used by the dataset experiments and by users' own loops as a starting point.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..core.validate import check_int, check_number
from ..errors import ConfigError
from ..rules.base import RuleDriver


@dataclass
class SupervisedState:
    """What the loop carries between epochs."""

    optimizer: torch.optim.Optimizer
    gen: torch.Generator
    epoch: int = 0
    history: list = field(default_factory=list)


def _as_tensors(x, y, n_in: int | None):
    try:
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    except (TypeError, ValueError):
        raise ConfigError("x must be a numeric (n, n_in) array") from None
    y = torch.as_tensor(np.asarray(y))
    if x.dim() != 2 or len(x) != len(y) or not len(y) or (n_in is not None and x.shape[1] != n_in):
        raise ConfigError(f"x of shape {tuple(x.shape)} and y of length {len(y)} do not fit: expected "
                          f"(n, {n_in if n_in is not None else 'n_in'}) inputs and n targets, n >= 1")
    if not bool(torch.isfinite(x).all()):
        raise ConfigError("x holds NaN or infinite values")
    if y.dtype.is_floating_point:
        return x, y.float().reshape(len(y), -1), nn.functional.mse_loss
    return x, y.long(), nn.functional.cross_entropy


def evaluate(model: nn.Module, x, y, batch: int = 4096) -> float:
    """Accuracy (class targets) or mean squared error (float targets) of `model` on (x, y)."""
    return _score(model, *_as_tensors(x, y, None), batch)


def _score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, batch: int = 4096) -> float:
    with torch.no_grad():
        out = torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])
    if loss_fn is nn.functional.cross_entropy:
        return float((out.argmax(1) == y).float().mean())
    return float(loss_fn(out, y))


def train_supervised(model: nn.Module, x, y, *, epochs: int = 10, lr: float = 1e-3, batch_size: int = 128,
                     rule=None, seed: int = 0, optimizer: torch.optim.Optimizer | None = None,
                     x_val=None, y_val=None, progress: bool = False, on_epoch=None) -> list[dict]:
    """Train `model` on (x, y); returns one row per epoch (loss, n_params, wall time, and
    `val` = accuracy or MSE on (x_val, y_val) when given). `rule` acts on `model` (a GraphNet)
    after every step; `optimizer` defaults to Adam(lr); `on_epoch(model, optimizer, epoch)` may
    add values to the row."""
    epochs, batch_size = check_int(epochs, "epochs", 1), check_int(batch_size, "batch_size", 1)
    lr = check_number(lr, "lr", above=0)
    seed = check_int(seed, "seed", 0)
    x, y, loss_fn = _as_tensors(x, y, getattr(model, "n_in", None))
    n_out = getattr(model, "n_out", None)
    if loss_fn is nn.functional.cross_entropy and n_out is not None and (int(y.min()) < 0 or int(y.max()) >= n_out):
        raise ConfigError(f"class ids must lie in 0..{n_out - 1} (one output per class); got {int(y.min())}.."
                          f"{int(y.max())}")
    state = SupervisedState(optimizer or torch.optim.Adam(model.parameters(), lr=lr),
                            torch.Generator().manual_seed(seed))
    val = _as_tensors(x_val, y_val, None) if x_val is not None else None  # converted once, not per epoch
    driver = RuleDriver(rule, model) if rule is not None else None
    from tqdm.auto import trange
    try:
        for epoch in trange(epochs, disable=not progress, desc="train", leave=False):
            started = time.perf_counter()
            order = torch.randperm(len(x), generator=state.gen)
            total = 0.0
            for i in range(0, len(x), batch_size):
                idx = order[i:i + batch_size]
                loss = loss_fn(model(x[idx]), y[idx])
                state.optimizer.zero_grad(set_to_none=False)
                loss.backward()
                state.optimizer.step()
                if driver is not None:
                    driver.after_step(state.optimizer)
                total += float(loss.detach()) * len(idx)
            row = {"epoch": epoch + 1, "loss": total / len(x), "wall_s": time.perf_counter() - started,
                   "n_params": getattr(model, "n_params", sum(p.numel() for p in model.parameters()))}
            if val is not None:
                row["val"] = _score(model, *val)
            if on_epoch is not None:
                row.update(on_epoch(model, state.optimizer, epoch + 1) or {})
            state.epoch = epoch + 1
            state.history.append(row)
    finally:
        if driver is not None:
            driver.close()
    return state.history
