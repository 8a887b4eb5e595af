"""Hebbian plasticity: the ABCD rule (Najarro & Risi 2020) as a weight rule of the protocol.

    Δw_ij = η_ij (A_ij o_i o_j + B_ij o_i + C_ij o_j + D_ij)

for every edge i -> j, with o_i the pre- and o_j the post-synaptic activity. The coefficients
are per edge slot (what an evolution strategy evolves) or shared scalars. The rule reads the
activity of the last forward pass from its trace and changes the weights in `update`, under
`torch.no_grad()`: no autograd graph, no optimizer. With a batch of samples the terms are
averaged over the batch. Optionally the weights are clipped to [-clip, clip] (Najarro & Risi
leave them unbounded; a rule evolved for one task can grow them without limit on another, so
a bound is a config value, off by default). `normalise="layer"` divides each layer's weights
by their largest |w| after every update, as the authors' code does for its gym tasks (the
layer of an edge is the level of its target neuron); None or "none", the default, leaves them.

The same rule runs a whole population at once: on a `GraphBatch`, with a `BatchTrace` of
its pass, the coefficients may be (E_cap,) tensors shared by all members or (P, E_cap) tensors,
one row per member (what `npl.evolve.HebbianControllers` evolves).
"""
from __future__ import annotations

import torch

from ..core.batch import GraphBatch
from ..core.trace import BatchTrace, Trace
from ..core.validate import check_choice, check_number
from ..errors import CheckpointError, ConfigError
from .base import Rule

COEFFICIENTS = ("eta", "A", "B", "C", "D")


class Hebbian(Rule):
    """`Hebbian(eta=0.01, A=1.0, B=0.0, C=0.0, D=0.0)`: each coefficient a number or a tensor
    with one value per edge slot of the net it will run on (`net.edge_capacity`)."""

    wants_trace = True

    def __init__(self, eta=0.01, A=1.0, B=0.0, C=0.0, D=0.0, clip: float | None = None,
                 normalise: str | None = None):
        self.coefficients = {}
        for name, value in zip(COEFFICIENTS, (eta, A, B, C, D)):
            if torch.is_tensor(value):
                value = value.detach().to(torch.float32)
                if not bool(torch.isfinite(value).all()):
                    raise ConfigError(f"Hebbian {name} holds values that are not finite")
            else:
                value = check_number(value, f"Hebbian {name}")
            self.coefficients[name] = value
        self.clip = None if clip is None else check_number(clip, "Hebbian clip", above=0)
        # "none" is the CLI's spelling of None; both mean no normalisation
        normalise = None if normalise is None else check_choice(normalise, "Hebbian normalise", ("layer", "none"))
        self.normalise = None if normalise == "none" else normalise
        self._trace = None

    def observe(self, net, trace=None) -> None:
        """Keep the trace of the pass that `update` will learn from: a `Trace` (a GraphNet's),
        a `BatchTrace`, or the activity tensor `pop(x, return_activity=True)` gives (wrapped)."""
        if isinstance(net, GraphBatch) and torch.is_tensor(trace):
            trace = BatchTrace(trace)
        want = BatchTrace if isinstance(net, GraphBatch) else Trace
        if trace is not None and not isinstance(trace, want):
            raise ConfigError(f"Hebbian.observe on a {type(net).__name__} needs a {want.__name__}"
                              f"{' or the activity of pop(x, return_activity=True)' if want is BatchTrace else ''}"
                              f", not {type(trace).__name__}")
        if isinstance(trace, BatchTrace) and (trace.activity.dim() != 3 or trace.activity.shape[0] != len(net)
                                              or trace.activity.shape[2] != net.neuron_capacity):
            raise ConfigError(f"the activity has shape {tuple(trace.activity.shape)}; this population's passes give "
                              f"({len(net)}, B, {net.neuron_capacity})")
        self._trace = trace

    def delta(self, net, trace) -> torch.Tensor:
        """Δw for every edge slot (zero for dead slots), from one trace: (E_cap,) for a
        GraphNet, (P, E_cap) for a GraphBatch."""
        if isinstance(net, GraphBatch):
            pre, post = trace.pre_post(net.src, net.dst)  # (P, B, E_cap)
            c = {k: (v.to(pre) if torch.is_tensor(v) else v) for k, v in self._sized(net).items()}
            return abcd(pre, post, c).masked_fill_(~net.edge_alive, 0.0)
        slots = net.edge_alive.nonzero().squeeze(1)
        pre, post = trace.pre_post(net.edge_src[slots], net.edge_dst[slots])
        c = {k: (v[slots.cpu()].to(pre) if torch.is_tensor(v) else v) for k, v in self._sized(net).items()}
        out = torch.zeros(net.edge_capacity, dtype=pre.dtype, device=pre.device)
        out[slots] = abcd(pre, post, c)
        return out

    def update(self, net) -> None:
        if self._trace is None:
            return
        with torch.no_grad():
            net.weight.add_(self.delta(net, self._trace).to(net.weight))
            if self.clip is not None:
                net.weight.clamp_(-self.clip, self.clip)
            if self.normalise == "layer":
                normalise_layers_(net)
        self._trace = None

    def _sized(self, net) -> dict:
        if isinstance(net, GraphBatch):
            shapes = ((net.edge_capacity,), (len(net), net.edge_capacity))
            for name, value in self.coefficients.items():
                if torch.is_tensor(value) and tuple(value.shape) not in shapes:
                    raise ConfigError(f"Hebbian {name} has shape {tuple(value.shape)}; a population of {len(net)} "
                                      f"with {net.edge_capacity} edge slots needs {shapes[0]} or {shapes[1]}")
            return self.coefficients
        for name, value in self.coefficients.items():
            if torch.is_tensor(value) and tuple(value.shape) not in ((net.edge_capacity,), (1, net.edge_capacity)):
                raise ConfigError(f"Hebbian {name} has shape {tuple(value.shape)}; the network has "
                                  f"{net.edge_capacity} edge slots, so it needs ({net.edge_capacity},)")
        return {k: (v.reshape(-1) if torch.is_tensor(v) else v) for k, v in self.coefficients.items()}

    def state_dict(self) -> dict:
        return {"coefficients": dict(self.coefficients), "clip": self.clip, "normalise": self.normalise}

    def load_state_dict(self, state: dict) -> None:
        """A state_dict's rule, checked as the constructor checks its arguments."""
        try:
            coefficients = dict(state["coefficients"])
            checked = Hebbian(**{k: coefficients[k] for k in COEFFICIENTS}, clip=state["clip"],
                              normalise=state.get("normalise"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"not a Hebbian state_dict ({type(exc).__name__} {exc}): it holds coefficients "
                                  f"{', '.join(COEFFICIENTS)}, clip and normalise") from None
        except ConfigError as exc:
            raise CheckpointError(f"a damaged Hebbian state_dict: {exc}") from None
        self.coefficients, self.clip, self.normalise = checked.coefficients, checked.clip, checked.normalise


def abcd(pre: torch.Tensor, post: torch.Tensor, c: dict) -> torch.Tensor:
    """η(A·pre·post + B·pre + C·post + D), each term averaged over the batch axis (-2) of
    (..., B, E) activities; coefficients are numbers or tensors broadcasting against (..., E)."""
    hebb = (pre * post).mean(-2)
    return c["eta"] * (c["A"] * hebb + c["B"] * pre.mean(-2) + c["C"] * post.mean(-2) + c["D"])


def normalise_layers_(net) -> None:
    """Divide every layer's weights by the layer's largest |w| (per member in a GraphBatch);
    the layer of an edge is the level of its target."""
    batch = isinstance(net, GraphBatch)
    weight = net.weight if batch else net.weight[None]
    alive = net.edge_alive if batch else net.edge_alive[None]
    dst = (net.dst if batch else net.edge_dst[None]).long().clamp(min=0)
    levels = net.levels() if batch else net.levels()[None]
    layer = levels.gather(1, dst).clamp(min=0).masked_fill(~alive, 0)
    top = weight.new_zeros(weight.shape[0], int(levels.max()) + 1).scatter_reduce(
        1, layer, weight.abs().masked_fill(~alive, 0), reduce="amax")
    scale = top.gather(1, layer).clamp(min=torch.finfo(weight.dtype).tiny)
    weight.div_(torch.where(alive, scale, torch.ones_like(scale)))
