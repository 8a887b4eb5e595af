"""Iterative magnitude pruning (IMP) with rewinding: the lottery ticket procedure.

Frankle & Carbin 2019 (App. B, "iterative pruning with resetting"): train; prune `rate` of the
still-remaining weights with the smallest |w|; reset the survivors to their initial values
(or, `rewind_step` = k > 0, to their values after k optimizer steps, Frankle et al. 2019);
retrain; repeat. Biases are never pruned and are reset with the weights.

Pruning here REMOVES the edges from the GraphNet, one `Edits().remove_edges(...)` a round,
together with the hidden neurons that no longer reach an output or get no input
(`remove_dead()`, which folds a source neuron's constant output into its targets' biases,
so the function is unchanged). Rewinding is one `set_weights` over the surviving edges.

scope "layer" (the paper's LeNet setting): every layer (edges grouped by the level of their
target neuron) loses `rate` of its remaining weights, the output layer `output_rate`
(half of `rate` by default, as in the paper). scope "global": all weights ranked together.

Controls (the paper's): "reinit", the ticket's structure with fresh weights from the
initial distribution; "random", the same number of weights removed per group each round but
chosen uniformly at random, survivors reset to their initial values.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ..core.edits import Edits
from ..core.validate import check_choice, check_int, check_number
from ..errors import ConfigError

# --- hyper-parameters (defaults of `find_tickets`)
RATE = 0.2            # share of the remaining weights pruned each round
SCOPE = "layer"       # "layer" (output layer at `output_rate`) or "global"
OUTPUT_RATE = None    # None: RATE / 2 in layer scope, as the paper prunes LeNet's output layer
REWIND_STEP = 0       # 0: reset to the initial weights; k: to the weights after k optimizer steps
SCOPES = ("layer", "global")
CONTROLS = ("ticket", "reinit", "random")


def check_options(rate=RATE, scope=SCOPE, output_rate=OUTPUT_RATE, rewind_step=REWIND_STEP) -> dict:
    """The validated options; a bad one is one ConfigError naming it."""
    rate = check_number(rate, "rate", above=0, below=1)
    scope = check_choice(scope, "scope", SCOPES)
    if output_rate is None:
        output_rate = rate / 2 if scope == "layer" else rate
    output_rate = check_number(output_rate, "output_rate", minimum=0, below=1)
    return {"rate": rate, "scope": scope, "output_rate": output_rate,
            "rewind_step": check_int(rewind_step, "rewind_step", 0)}


# --- weights by (src, dst): survive any slot moves, since neuron ids never change
def _keys(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    return (src.long().cpu() << 32) | dst.long().cpu()


@dataclass
class Snapshot:
    """Edge weights by (src, dst), every bias, and the fan-in each neuron had (for `reinit`)."""

    keys: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    fan_in: torch.Tensor

    def weights_of(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        keys = _keys(src, dst)
        pos = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        if not bool((self.keys[pos] == keys).all()):
            raise ConfigError("the network has edges the snapshot does not know (edges were added since)")
        return self.weight[pos]


def snapshot(net) -> Snapshot:
    src, dst, w = net.edges()
    keys = _keys(src, dst)
    order = torch.argsort(keys)
    return Snapshot(keys[order], w.detach().cpu().double()[order], net.bias.detach().cpu().clone(),
                    torch.bincount(dst.long().cpu(), minlength=net.capacity).clamp(min=1))


class RewindPoint:
    """Takes a snapshot after `at` optimizer steps; pass as `rule=` to a trainer
    (`train_supervised`) to rewind to iteration k instead of 0."""

    wants_trace = False

    def __init__(self, at: int):
        self.at, self.steps, self.snapshot = check_int(at, "rewind_step", 1), 0, None

    def observe(self, net, trace=None) -> None:
        pass

    def step(self, net, optimizer=None) -> Edits:
        self.steps += 1
        if self.steps == self.at:
            self.snapshot = snapshot(net)
        return Edits()

    def update(self, net) -> None:
        pass

    def state_dict(self) -> dict:
        snap = None if self.snapshot is None else {k: getattr(self.snapshot, k) for k in
                                                   ("keys", "weight", "bias", "fan_in")}
        return {"at": self.at, "steps": self.steps, "snapshot": snap}

    def load_state_dict(self, state: dict) -> None:
        self.at, self.steps = check_int(state["at"], "rewind_step", 1), int(state["steps"])
        self.snapshot = None if state["snapshot"] is None else Snapshot(**state["snapshot"])


def _set_biases(net, bias: torch.Tensor) -> None:
    ids = net.neuron_alive.nonzero().squeeze(1)
    ids = ids[ids >= net.n_in]
    with torch.no_grad():
        net.bias[ids] = bias[ids.cpu()].to(net.bias)


def rewind(net, to: Snapshot, optimizer=None) -> None:
    """Survivors' weights and biases back to the snapshot's values: one set_weights."""
    src, dst, _ = net.edges()
    net.apply_edits(Edits().set_weights(src, dst, to.weights_of(src, dst)), optimizer=optimizer)
    _set_biases(net, to.bias)


def reinit(net, init: Snapshot, seed: int, optimizer=None) -> None:
    """Fresh weights and biases from the initial distribution (nn.Linear's U(±1/sqrt(fan_in)),
    with the fan-in of the network `init` was taken from), on the surviving structure."""
    gen = torch.Generator().manual_seed(int(seed))
    src, dst, _ = net.edges()
    scale = init.fan_in.double().rsqrt()
    w = (torch.rand(len(src), generator=gen, dtype=torch.float64) * 2 - 1) * scale[dst.long().cpu()]
    net.apply_edits(Edits().set_weights(src, dst, w), optimizer=optimizer)
    _set_biases(net, ((torch.rand(len(scale), generator=gen, dtype=torch.float64) * 2 - 1) * scale).float())


def edge_layers(net) -> torch.Tensor:
    """The level of every neuron (the layer an edge belongs to is its target's level)."""
    return net.levels().detach().cpu().clone()


def _groups(dst: torch.Tensor, layers: torch.Tensor, n_in: int, n_out: int, scope: str, rate: float,
            output_rate: float) -> list[tuple[torch.Tensor, float]]:
    dst = dst.long().cpu()
    if scope == "global":
        return [(torch.arange(len(dst)), rate)]
    out = (dst >= n_in) & (dst < n_in + n_out)
    groups = [((~out & (layers[dst] == level)).nonzero().squeeze(1), rate)
              for level in torch.unique(layers[dst[~out]]).tolist()]
    return groups + [(out.nonzero().squeeze(1), output_rate)]


def prune(net, rate: float = RATE, *, scope: str = SCOPE, output_rate=OUTPUT_RATE, how: str = "magnitude",
          layers: torch.Tensor | None = None, gen: torch.Generator | None = None, optimizer=None,
          pack: bool = True) -> dict:
    """Remove round(r * n) of the n remaining edges of every group (smallest |w|, or at random
    with how="random"), then the dead neurons; one apply_edits. Returns counts and `removed`, the (src, dst) pruned by
    magnitude (or at random) before the dead neurons went. `layers` (from `edge_layers` of
    the unpruned net) keeps the layer of every neuron fixed over the rounds. `pack` then
    shrinks the edge storage to the survivors (`pack_edges`), so an optimizer steps over the
    live edges only and the executor reads each sparse level's weights as one slice."""
    opts = check_options(rate, scope, output_rate)
    check_choice(how, "how", ("magnitude", "random"))
    src, dst, w = net.edges()
    layers = edge_layers(net) if layers is None else layers
    drop, per_group = [], []
    for idx, r in _groups(dst, layers, net.n_in, net.n_out, opts["scope"], opts["rate"], opts["output_rate"]):
        k = round(r * len(idx))
        order = (torch.argsort(w[idx].abs().cpu(), stable=True) if how == "magnitude"
                 else torch.randperm(len(idx), generator=gen))
        drop.append(idx[order[:k]])
        per_group.append((len(idx), k))
    drop = torch.cat(drop)
    before, hidden = net.n_edges, net.n_hidden
    net.apply_edits(Edits().remove_edges(src[drop], dst[drop]).remove_dead(), optimizer=optimizer)
    if pack:
        net.pack_edges(optimizer)
    return {"pruned": len(drop), "removed": (src[drop].cpu(), dst[drop].cpu()),
            "dead_edges": before - len(drop) - net.n_edges, "dead_neurons": hidden - net.n_hidden,
            "edges": net.n_edges, "groups": per_group}


def find_tickets(net, train, rounds: int, *, rate: float = RATE, scope: str = SCOPE, output_rate=OUTPUT_RATE,
                 rewind_step: int = REWIND_STEP, controls=CONTROLS, seed: int = 0) -> dict:
    """IMP on `net` for `rounds` rounds, and the controls, level by level.

    `train(net, rule)` trains a net in place (a fresh optimizer each call) and returns its
    metrics; `rule` is a RewindPoint on the first ticket training when rewind_step > 0, else
    None. Returns {control: [metrics + {"level", "edges", "remaining"}]} with level 0 the
    dense net (shared by all controls)."""
    opts = check_options(rate, scope, output_rate, rewind_step)
    rounds = check_int(rounds, "rounds", 0)
    controls = (controls,) if isinstance(controls, str) else tuple(controls)  # one name, or several
    for c in controls:
        check_choice(c, "control", CONTROLS)
    layers, total = edge_layers(net), net.n_edges
    start = snapshot(net)
    gen = torch.Generator().manual_seed(int(seed))
    rand = copy.deepcopy(net) if "random" in controls else None
    out: dict = {c: [] for c in controls}

    def record(control, level, n, metrics):
        out[control].append({"level": level, "edges": n.n_edges, "remaining": n.n_edges / total, **metrics})

    point = RewindPoint(opts["rewind_step"]) if opts["rewind_step"] else None
    dense = train(net, point)
    rewind_to = point.snapshot if point is not None else start
    if rewind_to is None:
        raise ConfigError(f"rewind_step={opts['rewind_step']} is past the first training's "
                          f"{point.steps} optimizer steps")
    for c in controls:
        record(c, 0, net, dense)
    kw = {"scope": opts["scope"], "output_rate": opts["output_rate"], "layers": layers}
    for level in range(1, rounds + 1):
        prune(net, opts["rate"], **kw)
        rewind(net, rewind_to)
        if "reinit" in controls:
            twin = copy.deepcopy(net)
            reinit(twin, start, seed=seed * 1000 + level)
            record("reinit", level, twin, train(twin, None))
        if "random" in controls:
            prune(rand, opts["rate"], how="random", gen=gen, **kw)
            rewind(rand, rewind_to)
            record("random", level, rand, train(rand, None))
        # the ticket last: train() changes net's weights, which the next round prunes by
        metrics = train(net, None)
        if "ticket" in controls:
            record("ticket", level, net, metrics)
    return out
