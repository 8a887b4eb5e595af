"""Edits: a batch of structural changes, and `apply_edits`, the only way topology changes.

An `Edits` object only records operations; nothing happens until
`GraphNet.apply_edits(edits, optimizer=opt)`. Application is all-or-nothing: every op is
first checked against a Python-side index of the topology (edge lookup, adjacency, a valid
topological numbering for the DAG check); if any op is invalid, an `EditError` is raised
and the network and optimizer are untouched. The accepted changes are then written to the
tensors in one vectorised step (`GraphNet._write_structure`), which is also where optimizer
state is zeroed for touched slots and carried across any capacity growth.

The cost of applying a few ops is independent of network size: the index is built once
(on the first edit) and then updated op by op, and the level plan is rebuilt lazily.
"""
from __future__ import annotations

import heapq
import math
import warnings
from collections import defaultdict

import torch

from ..errors import CycleError, EditError
from .graph import ACTIVATIONS
from .surgery import _optimizers

_OUTPUT_LEVEL = math.inf  # outputs are always last in DAG mode


def _finite(value, name: str) -> float:
    """A weight or bias as a float; anything that is not a finite number is an EditError."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise EditError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(value):
        raise EditError(f"{name}={value} is not finite")
    return value


class NeuronRef:
    """A neuron created by an `Edits` batch; usable in later ops, `int()` after apply."""

    __slots__ = ("_edits", "_index")

    def __init__(self, edits: "Edits"):
        self._edits = edits
        self._index: int | None = None

    def __int__(self) -> int:
        if self._index is None:
            raise EditError("this neuron reference belongs to Edits that have not been applied yet")
        return self._index

    __index__ = __int__

    def __repr__(self) -> str:
        return f"NeuronRef({self._index if self._index is not None else 'pending'})"


class Edits:
    """A batch of structural changes, applied atomically by `GraphNet.apply_edits`.

    Ops run in the order they were recorded, so a neuron added by `add_neuron` can be
    wired by later `add_edge` calls of the same batch through the returned reference.
    """

    def __init__(self):
        self.ops: list[tuple] = []
        self.applied = False

    def add_neuron(self, between=None, *, weight_in: float = 1.0, weight_out: float = 0.0,
                   bias: float = 0.0) -> NeuronRef:
        """A hidden neuron; with `between=(src, dst)` a relay wired src -> new -> dst.

        The existing src -> dst edge (if any) is kept. The defaults (weight_out = 0) leave
        the network's function unchanged, while weight_in = 1 keeps the relay trainable:
        with both weights zero, neither would ever receive a gradient.
        """
        ref = NeuronRef(self)
        if between is not None:
            if not isinstance(between, tuple | list) or len(between) != 2:
                raise EditError(f"between={between!r} must be a pair (src, dst)")
            between = tuple(between)
        values = [_finite(v, name) for v, name in ((weight_in, "weight_in"), (weight_out, "weight_out"),
                                                   (bias, "bias"))]
        self.ops.append(("add_neuron", ref, between, *values))
        return ref

    def add_edge(self, src, dst, weight: float = 0.0) -> "Edits":
        self.ops.append(("add_edge", src, dst, _finite(weight, "weight")))
        return self

    def remove_edge(self, src, dst) -> "Edits":
        self.ops.append(("remove_edge", src, dst))
        return self

    def remove_neuron(self, neuron) -> "Edits":
        """Remove a hidden neuron and all its edges."""
        self.ops.append(("remove_neuron", neuron))
        return self

    def remove_dead(self) -> "Edits":
        """Remove hidden neurons that cannot affect the outputs, repeatedly, keeping the function.

        A neuron without outgoing edges is dropped. In DAG mode a neuron without incoming
        edges outputs the constant act(bias); that constant is folded into its targets' biases
        before it is dropped, so the outputs do not change.
        """
        self.ops.append(("remove_dead",))
        return self

    def counts(self) -> dict:
        out: dict[str, int] = defaultdict(int)
        for op in self.ops:
            out[op[0]] += 1
        return dict(out)

    def __len__(self) -> int:
        return len(self.ops)

    def __bool__(self) -> bool:
        return bool(self.ops)

    def __repr__(self) -> str:
        return f"Edits({self.counts()}, applied={self.applied})"


class _Topology:
    """Python-side index of a GraphNet's topology, kept in step with its tensors."""

    def __init__(self, net):
        self.dag = net.mode == "dag"
        self.n_in, self.n_fixed = net.n_in, net.n_in + net.n_out
        self.alive = net.neuron_alive.tolist()
        slots = net.edge_alive.nonzero().squeeze(1)
        src, dst = net.edge_src[slots].tolist(), net.edge_dst[slots].tolist()
        self.slot = dict(zip(zip(src, dst), slots.tolist()))
        self.succ, self.pred = defaultdict(set), defaultdict(set)
        for s, d in zip(src, dst):
            self.succ[s].add(d)
            self.pred[d].add(s)
        self.level = None
        if self.dag:
            self.level = [float(v) for v in net.levels().tolist()]
            for o in range(self.n_in, self.n_fixed):
                self.level[o] = _OUTPUT_LEVEL
        n_high = max((i for i, a in enumerate(self.alive) if a), default=0) + 1
        self.neuron_high = n_high
        self.free_neurons = [i for i in range(self.n_fixed, n_high) if not self.alive[i]]
        heapq.heapify(self.free_neurons)
        e_high = int(slots.max()) + 1 if len(slots) else 0
        self.edge_high = e_high
        # Free slots are handed out lowest first, from heaps: the order then depends only on
        # which slots are free, so an index rebuilt from the tensors (after npl.load, or after a
        # refused batch) places later edges exactly where the running index would have.
        self.free_edges = (~net.edge_alive[:e_high]).nonzero().squeeze(1).tolist()

    def is_alive(self, i: int) -> bool:
        return 0 <= i < len(self.alive) and self.alive[i]

    def new_neuron(self) -> int:
        if self.free_neurons:
            i = heapq.heappop(self.free_neurons)
        else:
            i = self.neuron_high
            self.neuron_high += 1
        while i >= len(self.alive):
            self.alive.append(False)
            if self.level is not None:
                self.level.append(-1.0)
        self.alive[i] = True
        if self.level is not None:
            self.level[i] = 1.0
        return i

    def new_edge_slot(self) -> int:
        if self.free_edges:
            return heapq.heappop(self.free_edges)
        self.edge_high += 1
        return self.edge_high - 1

    def reaches(self, start: int, target: int) -> bool:
        """Is there a path start ~> target? Only neurons below target's level can lie on it."""
        limit = self.level[target]
        stack, seen = [start], {start}
        while stack:
            u = stack.pop()
            if u == target:
                return True
            for v in self.succ[u]:
                if v not in seen and self.level[v] <= limit:
                    seen.add(v)
                    stack.append(v)
        return False

    def raise_levels(self, src: int, dst: int) -> None:
        """Restore level[u] < level[v] on every edge after adding src -> dst."""
        if self.level[dst] > self.level[src]:
            return
        self.level[dst] = self.level[src] + 1
        stack = [dst]
        while stack:
            u = stack.pop()
            for v in self.succ[u]:
                if self.level[v] <= self.level[u]:
                    self.level[v] = self.level[u] + 1
                    stack.append(v)


class _Batch:
    """Validates ops against the topology index and collects the tensor writes."""

    def __init__(self, net, topo: _Topology):
        self.net, self.t = net, topo
        self.new_neurons: dict[int, float] = {}
        self.dead_neurons: set[int] = set()
        self.new_edges: dict[int, tuple[int, int, float]] = {}
        self.dead_edges: set[int] = set()
        self.bias_delta: dict[int, float] = defaultdict(float)
        self.refs: list[tuple[NeuronRef, int]] = []

    # --- resolving and checking names
    def neuron(self, x, role: str) -> int:
        if isinstance(x, NeuronRef):
            if x._index is None:
                for ref, idx in self.refs:
                    if ref is x:
                        return idx
                raise EditError("a neuron reference from Edits that were never applied was used")
            i = x._index
        elif isinstance(x, bool) or (torch.is_tensor(x) and x.dtype == torch.bool):
            raise EditError(f"{role}={x!r} is a bool, not a neuron index")
        elif torch.is_tensor(x) and x.numel() == 1 and not x.is_floating_point():
            i = int(x)
        elif isinstance(x, int) or (hasattr(x, "__index__") and not isinstance(x, float | bool)):
            i = int(x.__index__()) if not isinstance(x, int) else x
        else:
            raise EditError(f"{role}={x!r} is not a neuron index")
        if not self.t.is_alive(i):
            raise EditError(f"{role}={i} names no live neuron")
        return i

    def is_hidden(self, i: int) -> bool:
        return i >= self.t.n_fixed

    # --- ops
    def add_neuron(self, ref, between, w_in, w_out, bias):
        if between is not None:
            src = self.neuron(between[0], "between[0]")
            dst = self.neuron(between[1], "between[1]")
        i = self.t.new_neuron()
        self.new_neurons[i] = bias
        self.refs.append((ref, i))
        if between is not None:
            self.add_edge(src, i, w_in)
            self.add_edge(i, dst, w_out)

    def add_edge(self, src, dst, weight):
        s, d = self.neuron(src, "src"), self.neuron(dst, "dst")
        if (s, d) in self.t.slot:
            raise EditError(f"edge {s} -> {d} already exists")
        if self.t.dag:
            if d < self.t.n_in:
                raise EditError(f"edge {s} -> {d}: input neurons take no incoming edges in DAG mode")
            if self.t.n_in <= s < self.t.n_fixed:
                raise EditError(f"edge {s} -> {d}: output neurons have no outgoing edges in DAG mode")
            if s == d or (self.t.level[s] >= self.t.level[d] and self.t.reaches(d, s)):
                raise CycleError(f"edge {s} -> {d} would create a cycle; the network runs as a DAG")
            self.t.raise_levels(s, d)
        slot = self.t.new_edge_slot()
        self.t.slot[(s, d)] = slot
        self.t.succ[s].add(d)
        self.t.pred[d].add(s)
        self.new_edges[slot] = (s, d, weight)

    def remove_edge(self, src, dst):
        s, d = self.neuron(src, "src"), self.neuron(dst, "dst")
        slot = self.t.slot.pop((s, d), None)
        if slot is None:
            raise EditError(f"edge {s} -> {d} does not exist")
        self.t.succ[s].discard(d)
        self.t.pred[d].discard(s)
        heapq.heappush(self.t.free_edges, slot)
        if self.new_edges.pop(slot, None) is None:
            self.dead_edges.add(slot)

    def remove_neuron(self, neuron):
        i = self.neuron(neuron, "neuron")
        if not self.is_hidden(i):
            raise EditError(f"neuron {i} is an input or output; only hidden neurons can be removed")
        for d in list(self.t.succ[i]):
            self.remove_edge(i, d)
        for s in list(self.t.pred[i]):
            self.remove_edge(s, i)
        self.t.alive[i] = False
        heapq.heappush(self.t.free_neurons, i)
        self.bias_delta.pop(i, None)
        if self.new_neurons.pop(i, None) is None:
            self.dead_neurons.add(i)

    def weight_of(self, s: int, d: int) -> float:
        slot = self.t.slot[(s, d)]
        if slot in self.new_edges:
            return self.new_edges[slot][2]
        return float(self.net.weight.detach()[slot])

    def bias_of(self, i: int) -> float:
        base = self.new_neurons[i] if i in self.new_neurons else float(self.net.bias.detach()[i])
        return base + self.bias_delta.get(i, 0.0)

    def remove_dead(self):
        act = ACTIVATIONS[self.net.activation]
        queue = [i for i in range(self.t.n_fixed, len(self.t.alive)) if self.t.alive[i]]
        while queue:
            i = queue.pop()
            if not self.t.alive[i]:
                continue
            outs = self.t.succ[i] - {i}
            ins = self.t.pred[i]
            if outs and ins:
                continue
            if outs:  # no inputs: a constant source
                const = float(act(torch.tensor(self.bias_of(i))))
                if not self.t.dag and (ins or const != 0.0):
                    continue  # in recurrent mode the constant appears only from step 1 on
                for d in outs:
                    self.bias_delta[d] += self.weight_of(i, d) * const
            neighbours = (outs | ins) - {i}
            self.remove_neuron(i)
            queue.extend(n for n in neighbours if n >= self.t.n_fixed)

    def run(self, edits: Edits):
        for op in edits.ops:
            getattr(self, op[0])(*op[1:])

    def commit(self, optimizer):
        alive_deltas = [(i, v) for i, v in self.bias_delta.items() if v != 0.0]
        self.net._write_structure(
            dead_edge_slots=sorted(self.dead_edges), dead_neurons=sorted(self.dead_neurons),
            new_neurons=list(self.new_neurons), new_bias=list(self.new_neurons.values()),
            new_edge_slots=list(self.new_edges),
            new_src=[v[0] for v in self.new_edges.values()],
            new_dst=[v[1] for v in self.new_edges.values()],
            new_weight=[v[2] for v in self.new_edges.values()],
            bias_ids=[i for i, _ in alive_deltas], bias_delta=[v for _, v in alive_deltas],
            optimizer=optimizer)


def apply_edits(net, edits: Edits, optimizer=None) -> Edits:
    """Apply `edits` to `net` atomically; returns `edits` with its references resolved."""
    if not isinstance(edits, Edits):
        raise EditError(f"expected an Edits object, got {type(edits).__name__}")
    if edits.applied:
        raise EditError("these Edits were already applied; build a new Edits for new changes")
    optimizer = _optimizers(optimizer)  # checked before anything is written
    if net._topology is None:
        net._topology = _Topology(net)
    batch = _Batch(net, net._topology)
    try:
        batch.run(edits)
    except Exception:
        net._topology = None  # the index saw half the batch; rebuild it from the tensors
        raise
    params = (net.weight, net.bias)
    # A Parameter with a gradient has been trained, most likely by an optimizer that was not
    # passed here; a net still being built (no gradient yet) reallocates without a word.
    trained = any(p.grad is not None for p in params)
    batch.commit(optimizer)
    if not optimizer and trained and (net.weight is not params[0] or net.bias is not params[1]):
        warnings.warn("apply_edits grew the network's storage into new Parameters; an optimizer built "
                      "before this call still holds the old ones and no longer trains the network: "
                      "pass it as apply_edits(..., optimizer=opt), which carries its state over",
                      stacklevel=3)
    for ref, idx in batch.refs:
        ref._index = idx
    edits.applied = True
    return edits
