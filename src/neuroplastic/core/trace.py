"""Per-sample activity of one forward pass, for local rules (Hebbian, learned, activity pruning).

A rule that reads activity asks for it with `net.register_trace_hook(fn)` (a forward hook of
the network's own, removable like torch's): while a hook is registered, each forward pass
keeps the per-sample state of every live neuron and calls `fn(net, trace)` with it. With no
hook registered nothing is kept, so training pays nothing for it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Trace:
    """`states[k]`: (batch, m) activity of the live neurons, columns in `ids` order. A DAG has
    one state (inputs included); a recurrent net has the initial state (the written input,
    zeros elsewhere) followed by one state per sweep."""

    x: torch.Tensor
    ids: torch.Tensor
    states: list
    capacity: int
    recurrent: bool

    def activity(self, k: int = -1) -> torch.Tensor:
        """(batch, capacity) value of every neuron slot in state k (0 for dead slots)."""
        state = self.states[k].detach()
        out = state.new_zeros(state.shape[0], self.capacity)
        out[:, self.ids] = state
        return out

    def mean_abs(self) -> torch.Tensor:
        """(capacity,) mean |activity| per neuron over the batch (and the sweeps)."""
        computed = range(1, len(self.states)) if self.recurrent else range(len(self.states))
        return torch.stack([self.activity(k).abs().mean(0) for k in computed]).mean(0)

    def pre_post(self, src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, n_edges) pre- and post-synaptic activity of the edges src -> dst. In a DAG
        both come from the one pass; in a recurrent net the source's value before the last
        sweep meets the target's value after it (what caused what)."""
        post = self.activity(-1)
        pre = self.activity(-2) if self.recurrent else post
        return pre[:, src.long()], post[:, dst.long()]


@dataclass
class BatchTrace:
    """The activity of one GraphBatch pass, `activity` (P, B, N_cap) as
    `pop(x, return_activity=True)` returns it: the population form of `Trace` (DAG mode, where
    pre- and post-synaptic values come from the same pass)."""

    activity: torch.Tensor

    def pre_post(self, src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, B, E) pre- and post-synaptic activity of the (P, E) edges src -> dst."""
        a = self.activity.detach()
        P, B = a.shape[:2]

        def at(index):
            return a.gather(2, index.long()[:, None, :].expand(P, B, index.shape[1]))
        return at(src), at(dst)
