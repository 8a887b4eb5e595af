"""Edits for many members of a GraphBatch at once, as tensors with a member column.

`GraphBatch.apply_edits({i: edits_i})` edits member by member through GraphNet (the one place
whose checks define what an edit means); that costs milliseconds a member, which is too slow
for a population that edits itself every few environment steps. `edit_arrays` applies the
same changes for all members in a handful of tensor operations, for the ops a controller's
outputs map to, in this fixed order:

  1. split (member, src, dst, weight_in, weight_out): a relay neuron src -> new -> dst
     (`Edits.add_neuron(between=(src, dst))`; the src -> dst edge, if any, is kept);
  2. remove (member, src, dst): `Edits.remove_edges`;
  3. add (member, src, dst, weight): `Edits.add_edges`;
  4. set_weights (member, src, dst, weight): `Edits.set_weights`.

The result is the graph that building, for every member, one Edits with those ops in that
order and applying the dict gives (tests/test_self_editing.py checks it op for op): the same
neurons (a new neuron takes its member's lowest free id, as GraphNet numbers them), edges,
weights and biases, with the same checks (live ends, no duplicate, no existing / missing
edge, DAG rules, no cycle). Only the storage order of a member's edges may differ (new edges
fill free slots instead of being packed), which the outputs do not see beyond rounding.
All-or-nothing: on any refusal nothing changes.
"""
from __future__ import annotations

import torch

from ..errors import EditError


def _column(values, n: int | None, name: str, dev, integer: bool) -> torch.Tensor:
    t = torch.as_tensor(values, device=dev)
    if t.dim() != 1 or (n is not None and len(t) != n):
        raise EditError(f"{name} must be 1-D with one entry per op" + (f" ({n})" if n is not None else ""))
    if integer:
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise EditError(f"{name} must hold integer ids, got {t.dtype}")
        return t.long()
    if t.is_complex() or t.dtype == torch.bool:
        raise EditError(f"{name} must hold real numbers")
    t = t.double()
    if not bool(torch.isfinite(t).all()):
        raise EditError(f"{name} holds {int((~torch.isfinite(t)).sum())} values that are not finite")
    return t


def _ops(spec, n_ids: int, n_weights: int, name: str, P: int, dev) -> tuple | None:
    if spec is None:
        return None
    if not isinstance(spec, tuple | list) or len(spec) != n_ids + n_weights:
        raise EditError(f"{name} must be a tuple of {n_ids + n_weights} tensors")
    member = _column(spec[0], None, f"{name} member", dev, True)
    n = len(member)
    cols = [member] + [_column(v, n, f"{name}[{k}]", dev, True) for k, v in enumerate(spec[1:n_ids], 1)]
    cols += [_column(v, n, f"{name}[{k}]", dev, False) for k, v in enumerate(spec[n_ids:], n_ids)]
    if n and (int(member.min()) < 0 or int(member.max()) >= P):
        raise EditError(f"{name}: member {int(member[(member < 0) | (member >= P)][0])} is not in 0..{P - 1}")
    return tuple(cols) if n else None


def _rank(member: torch.Tensor) -> torch.Tensor:
    """Position of each op among the earlier ops of its member (0, 1, ...)."""
    order = torch.argsort(member, stable=True)
    sorted_m = member[order]
    first = torch.searchsorted(sorted_m, sorted_m, right=False)
    rank = torch.empty_like(member)
    rank[order] = torch.arange(len(member), device=member.device) - first
    return rank


class _State:
    """The batch's tensors being edited (copies; written back only when all ops passed)."""

    def __init__(self, pop):
        self.n_in, self.n_fixed, self.dag = pop.n_in, pop.n_in + pop.n_out, pop.mode == "dag"
        self.src, self.dst = pop.src.long().clone(), pop.dst.long().clone()
        self.weight, self.edge_alive = pop.weight.clone(), pop.edge_alive.clone()
        self.bias, self.neuron_alive = pop.bias.clone(), pop.neuron_alive.clone()
        self.activation = pop.activation.clone()

    def pad(self, names, extra: int) -> None:
        for name in names:
            t = getattr(self, name)
            setattr(self, name, torch.cat([t, t.new_zeros(t.shape[0], extra)], 1))

    def check_live(self, m, ids, what: str) -> None:
        N = self.neuron_alive.shape[1]
        ok = (ids >= 0) & (ids < N)
        ok &= self.neuron_alive[m, ids.clamp(0, N - 1)]
        if not bool(ok.all()):
            i = int((~ok).nonzero()[0])
            raise EditError(f"member {int(m[i])}: {what}={int(ids[i])} names no live neuron")

    def find(self, m, s, d) -> torch.Tensor:
        """Slot of each edge (m, s, d), -1 where it does not exist."""
        # by sorted keys (member, src, dst) of the live edges: one sort and one binary search
        P, E = self.edge_alive.shape
        N = self.neuron_alive.shape[1]
        member = torch.arange(P, device=m.device)[:, None].expand(P, E)
        live = self.edge_alive
        keys = ((member * N + self.src) * N + self.dst)[live]
        slots = torch.arange(E, device=m.device).expand(P, E)[live]
        keys, order = keys.sort()
        if not len(keys):
            return torch.full_like(m, -1)
        want = (m * N + s.clamp(0, N - 1)) * N + d.clamp(0, N - 1)
        at = torch.searchsorted(keys, want).clamp(max=len(keys) - 1)
        ok = (keys[at] == want) & (s >= 0) & (s < N) & (d >= 0) & (d < N)
        return torch.where(ok, slots[order[at]], -1)

    def refuse_duplicates(self, m, s, d, what: str) -> None:
        N = self.neuron_alive.shape[1]
        key = (m * N + s) * N + d
        sorted_key = key.sort().values
        same = sorted_key[1:] == sorted_key[:-1]
        if bool(same.any()):
            k = int(sorted_key[1:][same][0])
            raise EditError(f"member {k // (N * N)}: {what} lists edge {(k // N) % N} -> {k % N} twice")

    def add(self, m, s, d, w) -> None:
        self.check_live(m, s, "src")
        self.check_live(m, d, "dst")
        self.refuse_duplicates(m, s, d, "add")
        if self.dag:
            bad = (d < self.n_in) | ((s >= self.n_in) & (s < self.n_fixed))
            if bool(bad.any()):
                i = int(bad.nonzero()[0])
                role = ("input neurons take no incoming edges" if d[i] < self.n_in
                        else "output neurons have no outgoing edges")
                raise EditError(f"member {int(m[i])}: edge {int(s[i])} -> {int(d[i])}: {role} in DAG mode")
        exists = self.find(m, s, d) >= 0
        if bool(exists.any()):
            i = int(exists.nonzero()[0])
            raise EditError(f"member {int(m[i])}: edge {int(s[i])} -> {int(d[i])} already exists")
        rank = _rank(m)
        free = (~self.edge_alive).sum(1)
        short = int((rank + 1 - free[m]).max())
        if short > 0:
            self.pad(("src", "dst", "weight", "edge_alive"), short)
        E = self.edge_alive.shape[1]
        arange = torch.arange(E, device=m.device)
        free_first = torch.argsort(self.edge_alive.long() * E + arange, 1)  # free slots, lowest first
        slot = free_first[m, rank]
        self.src[m, slot], self.dst[m, slot] = s, d
        self.weight[m, slot] = w.to(self.weight.dtype)
        self.edge_alive[m, slot] = True

    def remove(self, m, s, d) -> None:
        self.check_live(m, s, "src")
        self.check_live(m, d, "dst")
        self.refuse_duplicates(m, s, d, "remove")
        slot = self.find(m, s, d)
        missing = slot < 0
        if bool(missing.any()):
            i = int(missing.nonzero()[0])
            raise EditError(f"member {int(m[i])}: edge {int(s[i])} -> {int(d[i])} does not exist")
        self.edge_alive[m, slot] = False
        self.src[m, slot], self.dst[m, slot] = 0, 0
        self.weight[m, slot] = 0

    def set_weights(self, m, s, d, w) -> None:
        slot = self.find(m, s, d)
        missing = slot < 0
        if bool(missing.any()):
            i = int(missing.nonzero()[0])
            raise EditError(f"member {int(m[i])}: edge {int(s[i])} -> {int(d[i])} does not exist")
        self.weight[m, slot] = w.to(self.weight.dtype)

    def hidden_code(self) -> torch.Tensor:
        """(P,) the activation a new neuron of each member gets, as the per-member path
        chooses it: the hidden neurons' one code, else (none, or mixed) the inputs' code."""
        hidden = self.neuron_alive.clone()
        hidden[:, :self.n_fixed] = False
        codes = self.activation.long()
        big = torch.iinfo(torch.long).max
        lo = torch.where(hidden, codes, big).min(1).values
        hi = torch.where(hidden, codes, -1).max(1).values
        outs = codes[:, self.n_in:self.n_fixed]
        single = (lo == hi) & (outs.min(1).values == outs.max(1).values)
        return torch.where(hidden.any(1) & single, lo, codes[:, 0])

    def split(self, m, s, d, w_in, w_out) -> torch.Tensor:
        self.check_live(m, s, "between[0]")
        self.check_live(m, d, "between[1]")
        code = self.hidden_code()[m]
        rank = _rank(m)
        free = (~self.neuron_alive[:, self.n_fixed:]).sum(1)
        short = int((rank + 1 - free[m]).max())
        if short > 0:
            self.pad(("bias", "activation", "neuron_alive"), short)
        N = self.neuron_alive.shape[1]
        taken = self.neuron_alive.clone()
        taken[:, :self.n_fixed] = True  # only hidden ids are handed out
        arange = torch.arange(N, device=m.device)
        free_first = torch.argsort(taken.long() * N + arange, 1)
        new = free_first[m, rank]
        self.neuron_alive[m, new] = True
        self.bias[m, new] = 0
        self.activation[m, new] = code.to(self.activation.dtype)
        self.add(torch.cat([m, m]), torch.cat([s, new]), torch.cat([new, d]), torch.cat([w_in, w_out]))
        return new


def edit_arrays(pop, split=None, remove=None, add=None, set_weights=None) -> tuple[dict, torch.Tensor]:
    """The edited tensors of `pop` (a dict of buffer name -> new tensor) and the ids of the new
    neurons (one per split op). `pop` itself is not changed; see GraphBatch.apply_edit_arrays."""
    P, dev = len(pop), pop.weight.device
    ops = [_ops(split, 3, 2, "split", P, dev), _ops(remove, 3, 0, "remove", P, dev),
           _ops(add, 3, 1, "add", P, dev), _ops(set_weights, 3, 1, "set_weights", P, dev)]
    state = _State(pop)
    new = torch.zeros(0, dtype=torch.long, device=dev)
    if ops[0] is not None:
        new = state.split(*ops[0])
    if ops[1] is not None:
        state.remove(*ops[1])
    if ops[2] is not None:
        state.add(*ops[2])
    if ops[3] is not None:
        state.set_weights(*ops[3])
    tensors = {"src": state.src.to(torch.int32), "dst": state.dst.to(torch.int32), "weight": state.weight,
               "edge_alive": state.edge_alive, "bias": state.bias, "activation": state.activation,
               "neuron_alive": state.neuron_alive}
    return tensors, new
