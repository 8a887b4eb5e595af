"""Hebbian plasticity: the ABCD rule (Najarro & Risi 2020) as a weight rule of the protocol.

    Δw_ij = η_ij (A_ij o_i o_j + B_ij o_i + C_ij o_j + D_ij)

for every edge i -> j, with o_i the pre- and o_j the post-synaptic activity. The coefficients
are per edge slot (what an evolution strategy evolves) or shared scalars. The rule reads the
activity of the last forward pass from its trace and changes the weights in `update`, under
`torch.no_grad()`: no autograd graph, no optimizer. With a batch of samples the terms are
averaged over the batch. Optionally the weights are clipped to [-clip, clip] (Najarro & Risi
leave them unbounded; a rule evolved for one task can grow them without limit on another, so
a bound is a config value, off by default).
"""
from __future__ import annotations

import torch

from ..core.validate import check_number
from ..errors import ConfigError
from .base import Rule

COEFFICIENTS = ("eta", "A", "B", "C", "D")


class Hebbian(Rule):
    """`Hebbian(eta=0.01, A=1.0, B=0.0, C=0.0, D=0.0)`: each coefficient a number or a tensor
    with one value per edge slot of the net it will run on (`net.edge_capacity`)."""

    wants_trace = True

    def __init__(self, eta=0.01, A=1.0, B=0.0, C=0.0, D=0.0, clip: float | None = None):
        self.coefficients = {}
        for name, value in zip(COEFFICIENTS, (eta, A, B, C, D)):
            if torch.is_tensor(value):
                value = value.detach().to(torch.float32).reshape(-1)
                if not bool(torch.isfinite(value).all()):
                    raise ConfigError(f"Hebbian {name} holds values that are not finite")
            else:
                value = check_number(value, f"Hebbian {name}")
            self.coefficients[name] = value
        self.clip = None if clip is None else check_number(clip, "Hebbian clip", above=0)
        self._trace = None

    def observe(self, net, trace=None) -> None:
        self._trace = trace

    def delta(self, net, trace) -> torch.Tensor:
        """Δw for every edge slot (zero for dead slots), from one trace."""
        slots = net.edge_alive.nonzero().squeeze(1)
        pre, post = trace.pre_post(net.edge_src[slots], net.edge_dst[slots])
        c = {k: (v[slots.cpu()].to(pre) if torch.is_tensor(v) else v) for k, v in self._sized(net).items()}
        hebb = (pre * post).mean(0)
        change = c["eta"] * (c["A"] * hebb + c["B"] * pre.mean(0) + c["C"] * post.mean(0) + c["D"])
        out = torch.zeros(net.edge_capacity, dtype=pre.dtype, device=pre.device)
        out[slots] = change
        return out

    def update(self, net) -> None:
        if self._trace is None:
            return
        with torch.no_grad():
            net.weight.add_(self.delta(net, self._trace).to(net.weight))
            if self.clip is not None:
                net.weight.clamp_(-self.clip, self.clip)
        self._trace = None

    def _sized(self, net) -> dict:
        for name, value in self.coefficients.items():
            if torch.is_tensor(value) and value.numel() < net.edge_capacity:
                raise ConfigError(f"Hebbian {name} has {value.numel()} values; the network has "
                                  f"{net.edge_capacity} edge slots")
        return self.coefficients

    def state_dict(self) -> dict:
        return {"coefficients": dict(self.coefficients), "clip": self.clip}

    def load_state_dict(self, state: dict) -> None:
        self.coefficients = dict(state["coefficients"])
        self.clip = state["clip"]
