"""What every lifelong learner checks of its arguments: a task index, inputs (n, n_in) of
finite numbers, and labels that are class ids, one per row."""
from __future__ import annotations

import numpy as np
import torch

from ..core.validate import check_int
from ..errors import ConfigError


def task_index(t) -> int:
    return check_int(t, "task", 0)


def inputs(x, n_in: int, what: str, dtype=torch.float32) -> torch.Tensor:
    """`x` as a (n, n_in) tensor of finite numbers (NaN would train a broken net silently)."""
    if not torch.is_tensor(x):
        try:
            arr = np.asarray(x)
        except ValueError:  # rows of different lengths
            raise ConfigError(f"{what}: x must be an (n, {n_in}) array of numbers") from None
        if arr.dtype.kind not in "biuf":  # strings of digits too: numpy would parse them
            raise ConfigError(f"{what}: x must be numbers, not {arr.dtype}")
        x = torch.as_tensor(arr.astype(np.float64))
    x = x.to(dtype)
    if x.dim() != 2 or x.shape[1] != n_in or not len(x):
        raise ConfigError(f"{what}: x must be (n, {n_in}) with n >= 1; got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ConfigError(f"{what}: x holds {int((~torch.isfinite(x)).sum())} NaN or infinite values")
    return x


def labels(y, n: int, n_classes: int, what: str) -> torch.Tensor:
    """`y` as n class ids in 0..n_classes-1 (a long tensor)."""
    try:
        arr = y.detach().cpu().numpy() if torch.is_tensor(y) else np.asarray(y)
    except ValueError:  # rows of different lengths
        raise ConfigError(f"{what}: y must be {n} class ids, one integer per row of x") from None
    integral = arr.dtype.kind in "iu" or (arr.dtype.kind == "f" and bool(np.all(np.isfinite(arr)))
                                          and bool(np.all(arr == np.round(arr))))
    if not integral or arr.shape != (n,):
        raise ConfigError(f"{what}: y must be {n} class ids, one integer per row of x (not one-hot); "
                          f"got {arr.dtype} of shape {arr.shape}")
    if n and (int(arr.min()) < 0 or int(arr.max()) >= n_classes):
        raise ConfigError(f"{what}: class ids must lie in 0..{n_classes - 1}; got {int(arr.min())}..{int(arr.max())}")
    return torch.as_tensor(arr.astype(np.int64))
