"""Objective detectors of emergent structure in any GraphNet (DAG or recurrent).

Definitions (see docs/urn.md, "Detecting structure"):
  * live edge: |w| > threshold * max|w|.
  * layer of a neuron: in a recurrent net, the sweep at which it first carries signal from
    the inputs, i.e. the shortest live path from any input (inputs are layer 0); with data
    `x`, the first sweep at which the activity x causes (beyond what the biases alone
    produce) reaches 10% of its peak (`activity_layers`). In a DAG, the longest live path
    from the inputs: the level at which the executor computes it, so that an edge around a
    block (a residual path) counts as a skip. For an MLP both equal the level.
  * active neuron: a hidden neuron on a live input -> output path.
  * mlp_score: share of live |W| mass (among active neurons) on edges from layer k to k+1,
    counting every edge into an output as one step from its source when the output is read
    after the source's layer (the read-out step).
  * skip_share: share of that mass on edges that skip one layer or more, plus self loops
    (identity-like paths that carry a value across a sweep).
  * depth / widths: the number of hidden layers holding active neurons, and their sizes.
  * locality_radius: for first-layer neurons, the |w|-weighted RMS distance of their input
    weights from their centroid (median over neurons), next to the same with input positions
    randomly permuted (the control); locality_index = 1 - radius / control.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.paths import longest_path_lengths, shortest_path_lengths
from ..core.validate import check_number
from ..errors import ConfigError


def activity_layers(net, x: torch.Tensor, min_activity: float = 1e-4,
                    onset: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Recurrent nets: (layer, carries) per neuron slot. A neuron's signal at sweep k is its
    mean |state on x - state on a zero input|: the activity the data causes, not what a bias
    alone produces. Its layer is the first sweep (1..I-1) at which the signal reaches `onset`
    times its peak (a leak weaker than that does not count as carrying signal); carries =
    the peak exceeds min_activity. The read-out sweep I is left out: a hidden value computed
    there reaches nothing."""
    with torch.no_grad():
        _, states = net(x, return_states=True)
        _, baseline = net(torch.zeros_like(x[:1]), return_states=True)
    plan = net.plan()
    if len(states) > 1:
        states, baseline = states[:-1], baseline[:-1]
    signal = torch.stack([(s - b).abs().mean(0) for s, b in zip(states, baseline)]).cpu()  # (I-1, m)
    peak = signal.max(0).values
    layer = torch.full((net.capacity,), net.capacity + 1, dtype=torch.long)
    carries = torch.zeros(net.capacity, dtype=torch.bool)
    ids = plan.ids.cpu()
    layer[ids] = (signal >= onset * peak).float().argmax(0) + 1  # argmax: the first True
    carries[ids] = peak > min_activity
    layer[: net.n_in] = 0
    return layer, carries


def structure(net, x: torch.Tensor | None = None, threshold: float = 1e-3, positions=None,
              control_seed: int = 0) -> dict:
    """Structure metrics of `net` (keys: active_neurons, active_edges, depth, widths, mlp_score,
    skip_share, locality_radius, locality_radius_control, locality_index, is_mlp, layer_of).

    Layers come from the longest live path from the inputs in a DAG and the shortest in a
    recurrent net; for a recurrent net with data `x` they come from the first sweep at which
    each neuron carries signal caused by x (docs/urn.md; `activity_layers`).
    `positions` (one point per input, any dimension) defaults to the net's own (a URN built
    with positions)."""
    from ..core.graph import GraphNet
    if not isinstance(net, GraphNet):
        raise ConfigError(f"structure() expects a GraphNet, got {type(net).__name__}")
    threshold = check_number(threshold, "threshold (relative to the largest |w|)", 0, below=1)
    if x is not None:
        try:
            x = torch.as_tensor(x, dtype=net.weight.dtype, device=net.weight.device)
        except (TypeError, ValueError, RuntimeError):
            raise ConfigError(f"x must be a numeric (n, {net.n_in}) array, got {type(x).__name__}") from None
        x = x.reshape(1, -1) if x.dim() == 1 else x
        if x.dim() != 2 or x.shape[1] != net.n_in or len(x) == 0 or not bool(torch.isfinite(x).all()):
            raise ConfigError(f"x of shape {tuple(x.shape)} must be a non-empty, finite (n, {net.n_in}) array")
    if positions is None:
        positions = getattr(net, "positions", None)
    if positions is not None:
        try:
            positions = np.asarray(positions, dtype=np.float32)
        except (TypeError, ValueError):
            raise ConfigError(f"positions must be a numeric ({net.n_in}, d) array") from None
        if positions.ndim == 2 and not np.isfinite(positions[: net.n_in]).all():
            raise ConfigError("positions hold NaN or infinite values")
        if positions.ndim != 2 or len(positions) < net.n_in or positions.shape[1] < 1:
            raise ConfigError(f"positions has shape {positions.shape}; expected ({net.n_in}, d): one "
                              "coordinate row per input")
        positions = positions[: net.n_in]
    src, dst, w = (t.detach().cpu() for t in net.edges())
    w = w.float()  # the metrics need no more precision, and float64 nets then work too
    n = net.capacity
    n_in, n_fixed = net.n_in, net.n_in + net.n_out
    empty = {"active_neurons": 0, "active_edges": 0, "depth": 0, "widths": [], "mlp_score": None,
             "skip_share": None, "self_loop_share": None, "lateral_share": None, "locality_radius": None,
             "locality_radius_control": None, "locality_index": None, "is_mlp": False, "layer_of": {}}
    if len(w) == 0 or float(w.abs().max()) == 0:
        return empty
    live = w.abs() > threshold * w.abs().max()
    src, dst, w = src[live], dst[live], w[live]
    forward = shortest_path_lengths(n, src, dst, torch.arange(n_in))
    backward = shortest_path_lengths(n, dst, src, torch.arange(n_in, n_fixed))
    if net.mode == "dag":
        forward = longest_path_lengths(n, src, dst, torch.arange(n_in))
    on_path = (forward <= n) & (backward <= n)
    hidden = torch.zeros(n, dtype=torch.bool)
    hidden[n_fixed:] = True
    active = on_path & hidden
    if x is not None and net.mode == "recurrent":
        forward, carries = activity_layers(net, x)
        active &= carries
    keep = torch.zeros(n, dtype=torch.bool)
    keep[:n_fixed] = True
    keep |= active
    e = keep[src] & keep[dst]
    src, dst, w = src[e], dst[e], w[e]
    layer = forward.clone()
    hidden_layers = sorted(set(layer[active].tolist()))
    read_out = (max(hidden_layers) + 1) if hidden_layers else 1
    layer[n_in:n_fixed] = read_out  # outputs are read after the deepest hidden layer
    mass = w.abs()
    total = float(mass.sum())
    gap = layer[dst] - layer[src]
    self_loop = src == dst
    mlp_mass = float(mass[(gap == 1) & ~self_loop].sum())
    skip_mass = float(mass[((gap > 1) | self_loop)].sum())
    loop_mass = float(mass[self_loop].sum())
    widths = [int((layer[active] == k).sum()) for k in hidden_layers]
    out = {"active_neurons": int(active.sum()), "active_edges": int(len(w)), "depth": len(hidden_layers),
           "widths": widths, "mlp_score": mlp_mass / total if total else None,
           "skip_share": skip_mass / total if total else None,
           "self_loop_share": loop_mass / total if total else None,
           "lateral_share": (total - mlp_mass - skip_mass) / total if total else None}
    out.update(_locality(src, dst, w, layer, n_in, positions, control_seed))
    recurrent_steps = getattr(net, "steps", None) if net.mode == "recurrent" else None
    out["is_mlp"] = bool(out["mlp_score"] is not None and out["mlp_score"] >= 0.95
                         and hidden_layers == list(range(1, len(hidden_layers) + 1))
                         and (recurrent_steps is None or len(hidden_layers) == recurrent_steps - 1))
    out["layer_of"] = {int(i): int(layer[i]) for i in torch.nonzero(active).squeeze(1).tolist()}
    return out


def _locality(src, dst, w, layer, n_in, positions, seed) -> dict:
    none = {"locality_radius": None, "locality_radius_control": None, "locality_index": None}
    if positions is None:
        return none
    pos = torch.as_tensor(positions)
    first = (src < n_in) & (layer[dst] == 1)
    if not bool(first.any()):
        return none

    def median_radius(p):
        s, d, a = src[first], dst[first], w[first].abs()
        targets, inverse = torch.unique(d, return_inverse=True)
        total = torch.zeros(len(targets)).index_add(0, inverse, a)
        centroid = torch.zeros(len(targets), p.shape[1]).index_add(0, inverse, a[:, None] * p[s]) / total[:, None]
        spread = torch.zeros(len(targets)).index_add(0, inverse, a * ((p[s] - centroid[inverse]) ** 2).sum(1))
        return float((spread / total).sqrt().median())

    radius = median_radius(pos)
    control = median_radius(pos[torch.randperm(n_in, generator=torch.Generator().manual_seed(seed))])
    return {"locality_radius": radius, "locality_radius_control": control,
            "locality_index": 1 - radius / control if control > 0 else None}
