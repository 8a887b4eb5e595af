"""URN: the Unstructured Recursive Network (Golkar 2019, arXiv 1911.11691).

One S x S matrix W and one bias b applied `steps` (I) times to a state of S neurons:
N(l+1) = relu(W N(l) + b). The input is written into the input neurons once (unclamped,
docs/urn.md: the depth then equals I because the input travels as a wave), logits are
read from the output neurons after the last sweep. Nothing is layered a priori; structure
emerges from one loss:

    loss = CE + c_weight * sum|W| + c_activity * sum_l mean_batch ||N(l)||_1
              + c_local * sum |W_ij| * dist(p_i, p_j)

The two W terms are applied as a proximal step after each Adam step (soft-thresholding by
lr times the per-edge coefficient), which produces exact zeros instead of weights that
hover around zero; `proximal=False` puts them in the loss as subgradients instead.
The locality distance uses 2-D positions: inputs at their data coordinates (pixels), hidden
neurons tiled over the same extent; edges touching an output neuron carry no distance.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.graph import ACTIVATION_MODULES, GraphNet
from ..core.paths import shortest_path_lengths
from ..core.validate import check_device, check_int, check_number
from ..errors import ConfigError


@dataclass
class URNRegulators:
    c_weight: float = 1e-4     # L1 on W
    c_activity: float = 1e-4   # L1 on activity, summed over the sweeps
    c_local: float = 0.0       # |W_ij| weighted by the distance of the two neurons
    proximal: bool = True
    scale: float = 1.0         # multiplies all three coefficients (train_urn ramps it up)

    @classmethod
    def from_options(cls, options: dict) -> URNRegulators:
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown URN option(s) {unknown}; known: {', '.join(cls.__dataclass_fields__)}, "
                              "and n_in, n_out, size, steps, positions, activation, clamp_inputs, io_edges, seed")
        return cls(**options)

    def __post_init__(self):
        for f in ("c_weight", "c_activity", "c_local"):
            setattr(self, f, check_number(getattr(self, f), f"URN {f}", 0))


def hidden_positions(n_hidden: int, input_positions: np.ndarray, seed: int = 0) -> np.ndarray:
    """Hidden neurons tiled as sheets shaped like the input; leftovers at random spots."""
    n_in = len(input_positions)
    sheets = n_hidden // n_in
    tiled = np.tile(input_positions, (sheets, 1))
    rest = n_hidden - len(tiled)
    lo, hi = input_positions.min(0), input_positions.max(0)
    extra = np.random.default_rng(seed).uniform(lo, hi, size=(rest, 2))
    return np.concatenate([tiled, extra]).astype(np.float32)


class URN(GraphNet):
    """A GraphNet in recurrent mode with all S x S connections, plus the URN loss."""

    def __init__(self, n_in: int, n_out: int, size: int = 5000, steps: int = 4, *, positions=None,
                 activation: str = "relu", clamp_inputs: bool = False, io_edges: bool = False, seed: int = 0,
                 **regulators):
        n_in, n_out = check_int(n_in, "n_in", 1), check_int(n_out, "n_out", 1)
        # the inputs and outputs are neurons of the network too
        size = check_int(size, "size", n_in + n_out + 1)
        steps = check_int(steps, "steps", 1)
        regulators = URNRegulators.from_options(regulators)
        if regulators.c_local and positions is None:
            raise ConfigError(f"c_local={regulators.c_local} needs positions (one point per input): "
                              "the locality term weighs each |w| by the distance between its neurons")
        if positions is not None:
            positions = np.asarray(positions, dtype=np.float32)
            if positions.shape != (n_in, 2):
                raise ConfigError(f"positions has shape {positions.shape}, expected ({n_in}, 2): "
                                  "one 2-D coordinate per input")
            if not np.isfinite(positions).all():
                raise ConfigError("positions hold NaN or infinite values; give one finite 2-D point per input")
            positions = np.concatenate([positions, np.full((n_out, 2), np.nan, np.float32),
                                        hidden_positions(size - n_in - n_out, positions, seed)])
        super().__init__(n_in, n_out, activation, mode="recurrent", steps=steps, clamp_inputs=clamp_inputs,
                         connect="none", seed=seed, neuron_capacity=size, edge_capacity=size * size)
        # io_edges=False (default): inputs are written once and outputs read once. Nothing
        # feeds an input and output neurons feed nothing, and the input biases are held at 0,
        # so after the first sweep the inputs are silent and the signal moves as a wave. With
        # io_edges=True the input and output neurons are ordinary recurrent units; trained
        # networks then route computation through the output neurons themselves (seen in
        # docs/results/urn/shells), which hides any layering from a read-out at step I.
        self._connect_all_pairs(size - n_in - n_out, io_edges=io_edges)
        self._set_urn_settings(size, io_edges, regulators, positions)

    def _set_urn_settings(self, size: int, io_edges: bool, regulators: URNRegulators, positions) -> None:
        """What a URN adds to its GraphNet (`positions`: one 2-D point per neuron, or None)."""
        self.regulators = regulators
        self.size, self.io_edges, self.positions = size, io_edges, positions
        self.holds_input_biases = not io_edges and not self.clamp_inputs
        self._distance = None  # per-slot edge lengths, derived from positions when first needed
        self._bias_replaced()

    @classmethod
    def from_graph(cls, net: GraphNet, *, size: int, io_edges: bool = False, positions=None,
                   **regulators) -> URN:
        """A new URN holding `net`'s topology and weights (how `npl.load` restores a URN);
        `positions`: one point per neuron slot, or None. `net` itself is left as it is."""
        regulators = URNRegulators.from_options(regulators)
        if net.mode != "recurrent":
            raise ConfigError("a URN is a GraphNet in recurrent mode")
        urn = cls.__new__(cls)  # without URN.__init__, which would allocate all S x S edges
        GraphNet.__init__(urn, net.n_in, net.n_out, net.activation, net.output_activation, mode="recurrent",
                          steps=net.steps, clamp_inputs=net.clamp_inputs, connect="none", kernel=net.kernel,
                          seed=net.seed, neuron_capacity=net.capacity, edge_capacity=net.edge_capacity,
                          dtype=net.weight.dtype, device=net.weight.device)
        urn._set_urn_settings(size, io_edges, regulators,
                              None if positions is None else np.asarray(positions, dtype=np.float32))
        urn.load_state_dict(net.state_dict())
        return urn

    @classmethod
    def from_saved(cls, net: GraphNet, config: dict, positions) -> URN:
        keys = {"size", "io_edges", *URNRegulators.__dataclass_fields__}
        return cls.from_graph(net, positions=positions, **{k: v for k, v in config.items() if k in keys})

    @property
    def n_params(self) -> int:
        """Live edges plus trainable biases (input biases held at 0 are not counted)."""
        return super().n_params - (self.n_in if self.holds_input_biases else 0)

    def __setstate__(self, state):
        # copy.deepcopy and pickling (Ray) rebuild the Parameters without their hooks
        super().__setstate__(state)
        self._bias_replaced()

    def _bias_replaced(self) -> None:
        # the hook belongs to the Parameter: re-register it whenever `bias` is a new one
        if self.holds_input_biases:
            self.bias.register_hook(self._without_input_bias_grad)

    def _without_input_bias_grad(self, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[: self.n_in] = 0
        return grad

    @property
    def edge_distance(self) -> torch.Tensor:
        """Length of the edge in every slot (0 for dead slots and edges touching an output)."""
        if self._distance is None or self._distance.numel() != self.edge_capacity \
                or self._distance.device != self.weight.device:
            if self.positions is None:
                self._distance = torch.zeros(self.edge_capacity, device=self.weight.device)
            else:
                pos = torch.as_tensor(self.positions, device=self.edge_src.device)
                d = (pos[self.edge_src.long()] - pos[self.edge_dst.long()]).norm(dim=1)
                self._distance = torch.nan_to_num(d, nan=0.0) * self.edge_alive
        return self._distance

    def _structure_changed(self) -> None:
        self._distance = None

    def get_extra_state(self) -> dict:
        state = super().get_extra_state()
        if self.positions is not None:
            state["positions"] = torch.as_tensor(self.positions)
        return state

    def set_extra_state(self, state) -> None:
        super().set_extra_state(state)
        if isinstance(state, dict) and "positions" in state:
            self.positions = np.asarray(state["positions"], dtype=np.float32)
        self._distance = None

    # ------------------------------------------------------------------ loss
    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        logits, states = self(x, return_states=True)
        task = nn.functional.cross_entropy(logits, y)
        activity = sum(s.abs().sum(1).mean() for s in states)
        r = self.regulators
        total = task + r.scale * r.c_activity * activity
        if not r.proximal:
            total = total + r.scale * self.weight.abs().mul(r.c_weight + r.c_local * self.edge_distance).sum()
        return total, {"task": float(task.detach()), "activity": float(activity.detach())}

    @torch.no_grad()
    def proximal_step(self, optimizer: torch.optim.Optimizer) -> None:
        """The prox of the L1 terms after an optimizer step: soft-threshold w_i by lr * c_i.

        Under Adam/AdamW the threshold is taken in Adam's own metric, lr * c_i / (sqrt(v_i_hat)
        + eps), the step Adam would take for a gradient of c_i: a weight that gets no task
        gradient is thus zeroed at once, and the coefficients keep their loss units
        (comparable with the subgradient form, proximal=False). Under any other optimizer it
        is the plain proximal-gradient threshold lr * c_i."""
        r = self.regulators
        if not r.proximal or (r.c_weight == 0 and r.c_local == 0):
            return
        group = next((g for g in optimizer.param_groups if any(p is self.weight for p in g["params"])), None)
        if group is None:
            raise ConfigError("proximal_step: the optimizer does not hold this URN's weight; build it on "
                              "net.parameters() and pass it to apply_edits")
        coefficient = r.c_weight + r.c_local * self.edge_distance if r.c_local else r.c_weight
        state = optimizer.state.get(self.weight, {})
        if "exp_avg_sq" in state and "betas" in group:
            beta2, eps = group["betas"][1], group["eps"]
            denom = (state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))).sqrt_().add_(eps)
            threshold = denom.reciprocal_().mul_(coefficient).mul_(group["lr"] * r.scale)
        elif isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
            return  # no step taken yet: nothing to threshold against
        else:
            threshold = coefficient * (float(group["lr"]) * r.scale)
            if not torch.is_tensor(threshold):
                threshold = torch.full_like(self.weight, threshold)
        # soft threshold: w - clamp(w, -t, t) is sign(w) * max(|w| - t, 0)
        self.weight.sub_(torch.clamp(self.weight, min=-threshold, max=threshold))

    def compact(self, optimizer=None, threshold: float = 1e-3) -> dict:
        """Remove edges below threshold * max|W|, then every hidden neuron that no longer has a
        path to an output (it cannot affect the logits), then dead ends (`remove_dead`); all
        through apply_edits, so the optimizer keeps the survivors' state. Then the edge storage
        is packed to the survivors (`pack_edges`), so later steps cost what the live net costs.

        The weak edges it cuts (each below threshold * max|W|) move the logits slightly; `threshold=0` cuts only
        the exact zeros the proximal step leaves, and then the outputs are exactly preserved."""
        from ..core.edits import Edits
        src, dst, w = (t.cpu() for t in self.edges())
        cut = w.abs() <= threshold * w.abs().max()
        e = Edits().remove_edges(src[cut], dst[cut])
        n_fixed = self.n_in + self.n_out
        to_output = shortest_path_lengths(self.capacity, dst[~cut], src[~cut], torch.arange(self.n_in, n_fixed))
        unreachable = (to_output > self.capacity) & self.neuron_alive.cpu()
        unreachable[:n_fixed] = False
        e.remove_neurons(unreachable.nonzero().squeeze(1))
        e.remove_dead()
        before = (self.n_neurons, self.n_edges)
        self.apply_edits(e, optimizer=optimizer)
        self.pack_edges(optimizer)  # the S*S padded storage would otherwise cost every later step
        return {"neurons_removed": before[0] - self.n_neurons, "edges_removed": before[1] - self.n_edges}

    def config(self) -> dict:
        return {**super().config(), "size": self.size, "io_edges": self.io_edges,
                **dataclasses.asdict(self.regulators)}


def training_epoch(net: URN, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128) -> None:
    """One epoch of URN-loss forward, backward and Adam step with lr 0 (weights stay as they
    are): the unit of work that compaction speeds up, for timing it."""
    opt = torch.optim.Adam(net.parameters(), lr=0.0)
    for i in range(0, len(x), batch_size):
        loss, _ = net.loss(x[i:i + batch_size], y[i:i + batch_size])
        opt.zero_grad()
        loss.backward()
        opt.step()


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> float:
    with torch.no_grad():
        correct = sum(int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return correct / len(x)


def train_urn(net: URN, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float = 1e-3, batch_size: int = 128,
              seed: int = 0, device: str = "cpu", progress: bool = False, ramp_epochs: int = 0,
              compact_every: int = 0, compact_zeros_every: int = 0, on_epoch=None, rule=None,
              checkpoint=None) -> list[dict]:
    """Adam + proximal L1 steps over minibatches; returns one row per epoch.

    The regulators ramp linearly from 0 to full strength over `ramp_epochs`: the task is
    learned first and then sparsified. Switched on at full strength from the start, a strong
    L1 can silence the whole network before any path to the outputs forms, after which no
    gradient revives it.

    `compact_every=k` (lifetime structure evolution): once the ramp is over, every k epochs
    the dead edges and neurons are removed through apply_edits with the optimizer, so the
    survivors keep their Adam state and later epochs run on the smaller network.

    `compact_zeros_every=k`: while the ramp lasts, every k epochs the edges the proximal step
    has set exactly to zero are removed (and the neurons left with no path to an output), so
    the dense phase ends after a few epochs instead of at the end of the ramp: on shells
    (S = 1000) 55% of W is exactly zero after one epoch and 98.8% after five. The logits are unchanged; what is
    given up is that a zeroed edge could have come back later (docs/urn.md measures the
    difference).

    `checkpoint=PATH`: the state after every epoch (network, optimizer, the rule's state, the
    data order) is written there atomically, and a run given a checkpoint of the same run
    continues from it to the same numbers.

    `rule`: any rule of the protocol, driven after every step (after the proximal step)."""
    epochs, batch_size, ramp_epochs, compact_every, compact_zeros_every = (
        check_int(epochs, "epochs", 1), check_int(batch_size, "batch_size", 1),
        check_int(ramp_epochs, "ramp_epochs", 0), check_int(compact_every, "compact_every", 0),
        check_int(compact_zeros_every, "compact_zeros_every", 0))
    lr = check_number(lr, "lr", above=0)
    device = check_device(device)
    x, y = (t.detach().cpu().numpy() if torch.is_tensor(t) else t for t in (x, y))
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise ConfigError("x must be a numeric (n, n_in) array") from None
    y = np.asarray(y).reshape(-1)
    if x.ndim != 2 or x.shape[1] != net.n_in or len(x) != len(y) or not len(y):
        raise ConfigError(f"x of shape {x.shape} and y of length {len(y)} do not fit: expected "
                          f"(n, {net.n_in}) inputs and n labels, n >= 1")
    if not np.isfinite(x).all():
        raise ConfigError(f"x holds {int((~np.isfinite(x)).sum())} NaN or infinite values")
    if y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0)):
        raise ConfigError(f"labels must be integer class ids 0..{net.n_out - 1}, got {y.dtype} values")
    if y.min() < 0 or y.max() >= net.n_out:
        raise ConfigError(f"labels must lie in 0..{net.n_out - 1} (one output neuron per class)")
    net.to(device)
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.long, device=device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history = []
    identity = {"n_samples": len(y), "lr": lr, "batch_size": batch_size, "seed": seed, "ramp_epochs": ramp_epochs,
                "compact_every": compact_every, "compact_zeros_every": compact_zeros_every,
                "net": {k: v for k, v in net.config().items() if k != "scale"}}
    if checkpoint is not None and Path(checkpoint).exists():
        opt, history = _resume(checkpoint, net, gen, identity, lr, rule)
    import time

    from tqdm.auto import trange

    from ..rules.base import RuleDriver
    driver = RuleDriver(rule, net) if rule is not None else None
    for epoch in trange(len(history), epochs, initial=len(history), total=epochs, disable=not progress,
                        desc="URN", leave=False):
        started = time.perf_counter()
        net.regulators.scale = min(1.0, (epoch + 1) / ramp_epochs) if ramp_epochs else 1.0
        order = torch.randperm(len(xt), generator=gen).to(device)
        total, parts = 0.0, {}
        for i in range(0, len(xt), batch_size):
            idx = order[i:i + batch_size]
            loss, parts = net.loss(xt[idx], yt[idx])
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            net.proximal_step(opt)
            if driver is not None:
                driver.after_step(opt)
            total += float(loss.detach()) * len(idx)
        row = {"epoch": epoch + 1, "loss": total / len(xt), **parts, "epoch_s": time.perf_counter() - started,
               "n_edges": net.n_edges, "n_neurons": net.n_neurons}
        if compact_every and epoch + 1 >= ramp_epochs and (epoch + 1) % compact_every == 0:
            row.update({f"compaction_{k}": v for k, v in net.compact(optimizer=opt).items()})
        elif compact_zeros_every and epoch + 1 < ramp_epochs and (epoch + 1) % compact_zeros_every == 0:
            row.update({f"compaction_{k}": v for k, v in net.compact(optimizer=opt, threshold=0.0).items()})
        if on_epoch is not None:
            row.update(on_epoch(net, opt, epoch + 1) or {})
        history.append(row)
        if checkpoint is not None:
            from ..core import checkpoint as ckpt
            ckpt.save(checkpoint, net, rule=rule, step=epoch + 1, extra={
                "identity": identity, "history": history, "gen": gen.get_state(), "optimizer": opt.state_dict()})
    if driver is not None:
        driver.close()
    return history


def _resume(path, net: URN, gen: torch.Generator, identity: dict, lr: float, rule=None):
    """Load a train_urn checkpoint into `net` (its topology too), `gen` and `rule`; returns the
    optimizer rebuilt on the loaded parameters and the history so far."""
    from ..core import checkpoint as ckpt
    from ..errors import CheckpointError
    saved = ckpt.load(path)
    extra = saved["extra"]
    if extra.get("identity") != identity:
        raise CheckpointError(f"checkpoint {str(path)!r} belongs to a different URN run (data, network or "
                              "options differ); use another path")
    net.load_state_dict(saved["net"].state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    opt.load_state_dict(extra["optimizer"])
    if (rule is None) != (saved["rule"] is None):
        written = "with" if saved["rule"] is not None else "without"
        raise CheckpointError(f"checkpoint {str(path)!r} was written {written} a rule; resume it the same way")
    if rule is not None:
        rule.load_state_dict(saved["rule"])
    gen.set_state(extra["gen"])
    ckpt.set_rng_state(saved["rng"])
    return opt, list(extra["history"])


def to_sequential(net: GraphNet, layer_of: dict) -> nn.Sequential:
    """The emergent MLP as plain torch layers: inputs -> layer 1 -> ... -> layer D -> outputs.

    Edges from layer k to k+1 become the Linear weights (inputs are layer 0, the outputs
    follow layer D, read after sweep D+1). Neurons that no input reaches compute the same
    values for every input; their contribution at each sweep is folded into the next layer's
    bias. Any other edge is left out: `structure(...)["is_mlp"]` says when that mass is small.
    """
    if net.mixed_activations:  # nn.Sequential layers share one activation module
        raise ConfigError("to_sequential needs one activation for every neuron; this net has per-neuron ones "
                          "(set_activations): export it with net.to_module() instead")
    depth = max(layer_of.values(), default=0)
    groups = [list(range(net.n_in))] + [sorted(i for i, k in layer_of.items() if k == d)
                                         for d in range(1, depth + 1)]
    groups.append(list(range(net.n_in, net.n_in + net.n_out)))
    src, dst, w = (t.detach().cpu() for t in net.edges())
    bias = net.bias.detach().cpu()
    reached = shortest_path_lengths(net.capacity, src, dst, torch.arange(net.n_in)) <= net.capacity
    constant = net.neuron_alive.cpu() & ~reached
    with torch.no_grad():  # the input-independent neurons' values, sweep by sweep
        _, states = net(torch.zeros(1, net.n_in, dtype=net.weight.dtype, device=net.weight.device),
                        return_states=True)
    ids = net.plan().ids.cpu()
    value_at = [torch.zeros(net.capacity).index_put_((ids,), st[0].detach().cpu().float()) for st in states]

    def position_in(group: list[int]) -> torch.Tensor:
        return torch.full((net.capacity,), -1).index_put_((torch.tensor(group, dtype=torch.long),),
                                                          torch.arange(len(group)))

    layers: list[nn.Module] = []
    for k, (prev, cur) in enumerate(zip(groups, groups[1:])):
        lin = nn.Linear(len(prev), len(cur))
        r, c = position_in(cur)[dst], position_in(prev)[src]  # -1: not in that layer
        direct = (r >= 0) & (c >= 0)
        weights = torch.zeros(len(cur), len(prev)).index_put_((r[direct], c[direct]), w[direct].float())
        folded = bias[cur].clone().float()
        if k >= 1:  # a constant neuron's value after sweep k feeds sweep k + 1
            fold = (r >= 0) & (c < 0) & constant[src]
            folded.index_add_(0, r[fold], w[fold].float() * value_at[k - 1][src[fold]])
        with torch.no_grad():
            lin.weight.copy_(weights)
            lin.bias.copy_(folded)
        layers.append(lin)
        if k < len(groups) - 2:
            layers.append(ACTIVATION_MODULES[net.activation]())
        elif net.output_activation != "identity":
            layers.append(ACTIVATION_MODULES[net.output_activation]())
    return nn.Sequential(*layers)
