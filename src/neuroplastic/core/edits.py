"""Edits: a batch of structural changes, and `apply_edits`, the only way topology changes.

An `Edits` object only records operations; nothing happens until
`GraphNet.apply_edits(edits, optimizer=opt)`. Application is all-or-nothing: every op is
first checked against an index of the topology (`EditIndex`: edge existence by sorted keys,
adjacency by key ranges, a valid topological numbering for the DAG check); if any op is
invalid, an `EditError` is raised and the network and optimizer are untouched. The accepted
changes are then written to the tensors in one vectorised step (`GraphNet.write_structure`),
which is also where optimizer state is zeroed for touched slots and carried across any
capacity growth.

Ops come in two forms that mix freely in one batch, applied in the order recorded:
* single ops (`add_neuron`, `add_edge`, ...), whose cost does not depend on the network's size;
* array ops (`add_edges`, `remove_edges`, `set_weights`) taking tensors, checked and applied
  with tensor operations, so removing 90% of a million edges is one call costing about one
  training step, not a Python loop.
"""
from __future__ import annotations

import heapq
import math
from collections import defaultdict

import torch

from ..errors import CycleError, EditError
from .execute import ACTIVATION_NAMES, ACTIVATIONS, MixedActivation, longest_path_levels
from .index import KEY_LOW, KEY_SHIFT, OUTPUT_LEVEL, EditIndex
from .surgery import as_optimizer_list
from .validate import check_int

# A removal through single ops costs a Python step per edge; above this many edges a
# neuron's edges are removed as one array op instead.
_ARRAY_REMOVAL_FROM = 64


def _finite(value, name: str) -> float:
    """A weight or bias as a float; anything that is not a finite number is an EditError."""
    if isinstance(value, bool | complex):
        raise EditError(f"{name}={value!r} is not a real number")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise EditError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(value):
        raise EditError(f"{name}={value} is not finite")
    return value


def _index_array(values, name: str) -> torch.Tensor:
    """A 1-D int64 CPU tensor of neuron ids from a tensor, array or list of ints."""
    try:
        t = torch.as_tensor(values)
    except (TypeError, ValueError, RuntimeError):
        raise EditError(f"{name} must be a tensor, array or list of integer neuron ids (array ops take "
                        "no NeuronRefs: wire a new neuron with add_edge, or apply it first)") from None
    if t.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise EditError(f"{name} must hold integer neuron ids, got {t.dtype}")
    if t.dim() > 1:
        raise EditError(f"{name} has shape {tuple(t.shape)}; expected one id per edge (1-D)")
    return t.reshape(-1).to("cpu", torch.long)


def _weight_array(values, n: int, name: str) -> torch.Tensor:
    """A 1-D float64 CPU tensor of n finite values (a scalar is broadcast)."""
    if (torch.is_tensor(values) and (values.is_complex() or values.dtype == torch.bool)) \
            or isinstance(values, bool | complex):
        raise EditError(f"{name} must hold real numbers")
    try:
        t = torch.as_tensor(values, dtype=torch.float64).detach().reshape(-1).cpu()
    except (TypeError, ValueError, RuntimeError):
        raise EditError(f"{name} must hold numbers") from None
    if t.numel() == 1 and n != 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise EditError(f"{name} has {t.numel()} values for {n} edges")
    if not bool(torch.isfinite(t).all()):
        raise EditError(f"{name} holds {int((~torch.isfinite(t)).sum())} values that are not finite")
    return t


class NeuronRef:
    """A neuron created by an `Edits` batch; usable in later ops, `int()` after apply."""

    __slots__ = ("_edits", "_index")

    def __init__(self, edits: Edits):
        self._edits = edits
        self._index: int | None = None

    def __int__(self) -> int:
        if self._index is None:
            raise EditError("this neuron reference belongs to Edits that have not been applied yet")
        return self._index

    __index__ = __int__

    @property
    def resolved(self) -> int | None:
        """The neuron's index once its Edits were applied, else None."""
        return self._index

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
        self.new_neurons: list[NeuronRef] = []  # filled by from_tensors

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

    def add_edge(self, src, dst, weight: float = 0.0) -> Edits:
        self.ops.append(("add_edge", src, dst, _finite(weight, "weight")))
        return self

    def remove_edge(self, src, dst) -> Edits:
        self.ops.append(("remove_edge", src, dst))
        return self

    def remove_neuron(self, neuron) -> Edits:
        """Remove a hidden neuron and all its edges."""
        self.ops.append(("remove_neuron", neuron))
        return self

    def remove_dead(self) -> Edits:
        """Remove hidden neurons that cannot affect the outputs, repeatedly, keeping the function.

        A neuron without outgoing edges is dropped. In DAG mode a neuron without incoming
        edges outputs the constant act(bias); that constant is folded into its targets' biases
        before it is dropped, so the outputs do not change.
        """
        self.ops.append(("remove_dead",))
        return self

    # --- array form: tensors (or arrays, lists) of neuron ids, one entry per edge
    def add_edges(self, src, dst, weight=0.0) -> Edits:
        """Add the edges src[i] -> dst[i] with weight[i] (a scalar weight is shared)."""
        s, d = _index_array(src, "src"), _index_array(dst, "dst")
        if len(s) != len(d):
            raise EditError(f"src has {len(s)} entries and dst {len(d)}; expected one per edge")
        w = _weight_array(weight, len(s), "weight")
        if len(s):  # an empty array op is no op at all (so `bool(edits)` stays meaningful)
            self.ops.append(("add_edges", s, d, w))
        return self

    def remove_edges(self, src, dst) -> Edits:
        """Remove the edges src[i] -> dst[i]; every one must exist."""
        s, d = _index_array(src, "src"), _index_array(dst, "dst")
        if len(s) != len(d):
            raise EditError(f"src has {len(s)} entries and dst {len(d)}; expected one per edge")
        if len(s):
            self.ops.append(("remove_edges", s, d))
        return self

    def remove_neurons(self, neurons) -> Edits:
        """Remove hidden neurons and all their edges (the array form of remove_neuron)."""
        ids = _index_array(neurons, "neurons")
        if len(ids):
            self.ops.append(("remove_neurons", ids))
        return self

    def set_weights(self, src, dst, weight) -> Edits:
        """Set the weights of existing edges (rewinding, or a controller's weight commands).
        Optimizer state is left as it is: this changes values, not structure."""
        s, d = _index_array(src, "src"), _index_array(dst, "dst")
        if len(s) != len(d):
            raise EditError(f"src has {len(s)} entries and dst {len(d)}; expected one per edge")
        w = _weight_array(weight, len(s), "weight")
        if len(s):
            self.ops.append(("set_weights", s, d, w))
        return self

    @classmethod
    def from_tensors(cls, add=None, remove=None, set_weights=None, add_neurons: int = 0) -> Edits:
        """Edits from tensors a network produced (a self-editing controller's commands):
        `add`/`set_weights` = (src, dst, weight), `remove` = (src, dst); `add_neurons`
        unconnected hidden neurons first (their refs are in `edits.new_neurons`)."""
        e = cls()
        e.new_neurons = [e.add_neuron() for _ in range(check_int(add_neurons, "add_neurons", 0, error=EditError))]
        if remove is not None:
            e.remove_edges(*remove)
        if add is not None:
            e.add_edges(*add)
        if set_weights is not None:
            e.set_weights(*set_weights)
        return e

    # an array op counts as that many single ops
    _SINGLE_NAME = {"add_edges": "add_edge", "remove_edges": "remove_edge", "set_weights": "set_weight",
                    "remove_neurons": "remove_neuron"}

    def counts(self) -> dict:
        """How many of each op the batch holds: {"add_neuron": 2, "remove_edge": 90, ...}."""
        out: dict[str, int] = defaultdict(int)
        for op in self.ops:
            name = self._SINGLE_NAME.get(op[0])
            out[name or op[0]] += len(op[1]) if name else 1
        return dict(out)

    def __len__(self) -> int:
        return len(self.ops)

    def __bool__(self) -> bool:
        return bool(self.ops)

    def __repr__(self) -> str:
        return f"Edits({self.counts()}, applied={self.applied})"


class _Batch:
    """Validates ops against the index and collects the tensor writes."""

    def __init__(self, net, index: EditIndex):
        self.net, self.t = net, index
        self.new_neurons: dict[int, float] = {}
        self.dead_neurons: set[int] = set()
        self.new_edges: dict[int, tuple[int, int, float]] = {}   # slot -> edge, from single ops
        self.new_arrays: list[list[torch.Tensor]] = []           # [slots, src, dst, weight]
        self.dead_edges: set[int] = set()
        self.dead_arrays: list[torch.Tensor] = []
        self.weight_sets: list[list[torch.Tensor]] = []           # [slots, weight], in op order
        self.bias_delta: dict[int, float] = defaultdict(float)
        self.refs: list[tuple[NeuronRef, int]] = []

    # --- resolving and checking names
    def neuron(self, x, role: str) -> int:
        if isinstance(x, NeuronRef):
            if x.resolved is None:
                for ref, idx in self.refs:
                    if ref is x:
                        return idx
                raise EditError("a neuron reference from Edits that were never applied was used")
            i = x.resolved
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

    def neurons(self, ids: torch.Tensor, role: str) -> None:
        alive = self.t.alive_tensor()
        bad = (ids < 0) | (ids >= len(alive))
        bad |= ~alive[ids.clamp(0, max(len(alive) - 1, 0))] if len(alive) else True
        if bool(bad.any()):
            raise EditError(f"{role}={int(ids[bad][0])} names no live neuron")

    def is_hidden(self, i: int) -> bool:
        return i >= self.t.n_fixed

    # --- single ops
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
        if self.t.slot_of(s, d) is not None:
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
        self.t.edges.add(s, d, slot)
        self.new_edges[slot] = (s, d, weight)

    def remove_edge(self, src, dst):
        s, d = self.neuron(src, "src"), self.neuron(dst, "dst")
        slot = self.t.slot_of(s, d)
        if slot is None:
            raise EditError(f"edge {s} -> {d} does not exist")
        self.t.edges.remove(s, d)
        heapq.heappush(self.t.freed, slot)
        if not (self.new_arrays or self.weight_sets):  # the common case, without tensors
            if self.new_edges.pop(slot, None) is None:
                self.dead_edges.add(slot)
        else:
            self._retire_slots(torch.tensor([slot]))

    def remove_neuron(self, neuron):
        i = self.neuron(neuron, "neuron")
        if not self.is_hidden(i):
            raise EditError(f"neuron {i} is an input or output; only hidden neurons can be removed")
        outs, ins = self.t.successors(i), self.t.predecessors(i)
        if len(outs) + len(ins) >= _ARRAY_REMOVAL_FROM:
            ins = [s for s in ins if s != i]  # a self loop is among the outgoing edges already
            self._remove_edge_arrays(torch.tensor([i] * len(outs) + ins, dtype=torch.long),
                                     torch.tensor(outs + [i] * len(ins), dtype=torch.long))
        else:
            for d in outs:
                self.remove_edge(i, d)
            for s in ins:
                if s != i:
                    self.remove_edge(s, i)
        self._retire_neurons([i])

    def _retire_neurons(self, ids) -> None:
        for i in ids:
            self.t.alive[i] = False
            heapq.heappush(self.t.free_neurons, i)
            self.bias_delta.pop(i, None)
            if self.new_neurons.pop(i, None) is None:
                self.dead_neurons.add(i)

    def _retire_slots(self, slots: torch.Tensor) -> None:
        """Slots whose edges are gone: a slot this batch filled is simply not written; a slot
        of the network is retired at commit. Pending weight sets on them are dropped."""
        single = [s for s in slots.tolist() if s in self.new_edges] if self.new_edges else []
        for s in single:
            del self.new_edges[s]
        new_here = torch.zeros(len(slots), dtype=torch.bool)
        if single:
            new_here |= torch.isin(slots, torch.tensor(single))
        for arrays in self.new_arrays:
            mine = torch.isin(arrays[0], slots)
            if bool(mine.any()):
                new_here |= torch.isin(slots, arrays[0][mine])
                arrays[:] = [a[~mine] for a in arrays]
        slots = slots[~new_here]
        if self.weight_sets:
            for pair in self.weight_sets:
                keep = ~torch.isin(pair[0], slots)
                pair[:] = [p[keep] for p in pair]
        if len(slots) <= 8:
            self.dead_edges.update(slots.tolist())
        else:
            self.dead_arrays.append(slots)

    # --- array ops
    def add_edges(self, s: torch.Tensor, d: torch.Tensor, w: torch.Tensor):
        if not len(s):
            return
        self.neurons(s, "src")
        self.neurons(d, "dst")
        keys = (s << KEY_SHIFT) | d
        if len(torch.unique(keys)) != len(keys):
            sorted_keys = torch.sort(keys).values
            k = int(sorted_keys[1:][sorted_keys[1:] == sorted_keys[:-1]][0])
            raise EditError(f"edge {k >> KEY_SHIFT} -> {k & KEY_LOW} is listed twice")
        existing = self.t.slots_of(s, d) >= 0
        if bool(existing.any()):
            i = int(existing.nonzero()[0])
            raise EditError(f"edge {int(s[i])} -> {int(d[i])} already exists")
        if self.t.dag:
            self._check_dag_arrays(s, d)
        slots = self.t.new_edge_slots(len(s))
        self.t.edges.insert(s, d, slots)
        self.new_arrays.append([slots, s, d, w])

    def _check_dag_arrays(self, s: torch.Tensor, d: torch.Tensor) -> None:
        t = self.t
        bad = d < t.n_in
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise EditError(f"edge {int(s[i])} -> {int(d[i])}: input neurons take no incoming edges in DAG mode")
        bad = (s >= t.n_in) & (s < t.n_fixed)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise EditError(f"edge {int(s[i])} -> {int(d[i])}: output neurons have no outgoing edges in DAG mode")
        level = torch.tensor(t.level, dtype=torch.float64)
        if bool((level[s] < level[d]).all()):
            return  # the numbering stays topological: no cycle is possible
        src, dst, _ = t.live_edges()
        alive = t.alive_tensor()
        try:  # one vectorised longest-path pass over the graph with the new edges
            new_level = longest_path_levels(alive, torch.cat([src, s]), torch.cat([dst, d]), t.n_in,
                                            t.n_fixed - t.n_in)
        except CycleError:
            raise CycleError(f"the {len(s)} new edges would create a cycle; the network runs as a DAG") from None
        t.level = [float(v) if v >= 0 else -1.0 for v in new_level.tolist()]
        for o in range(t.n_in, t.n_fixed):
            t.level[o] = OUTPUT_LEVEL

    def remove_edges(self, s: torch.Tensor, d: torch.Tensor):
        if not len(s):
            return
        self._remove_edge_arrays(s, d)

    def _remove_edge_arrays(self, s: torch.Tensor, d: torch.Tensor) -> None:
        slots = self.t.slots_of(s, d)
        missing = slots < 0
        if bool(missing.any()):
            i = int(missing.nonzero()[0])
            raise EditError(f"edge {int(s[i])} -> {int(d[i])} does not exist")
        if int(torch.bincount(slots).max()) > 1:
            raise EditError("remove_edges lists an edge twice")
        self.t.edges.delete(s, d)
        self.t.free_edge_slots(slots)
        self._retire_slots(slots)

    def remove_neurons(self, ids: torch.Tensor):
        if len(torch.unique(ids)) != len(ids):
            raise EditError("remove_neurons lists a neuron twice")
        self.neurons(ids, "neuron")
        fixed = ids < self.t.n_fixed
        if bool(fixed.any()):
            raise EditError(f"neuron {int(ids[fixed][0])} is an input or output; only hidden neurons can be removed")
        src, dst, _ = self.t.live_edges()
        gone = torch.zeros(len(self.t.alive), dtype=torch.bool)
        gone[ids] = True
        touching = gone[src] | gone[dst]
        if bool(touching.any()):
            self._remove_edge_arrays(src[touching], dst[touching])
        self._retire_neurons(ids.tolist())

    def set_weights(self, s: torch.Tensor, d: torch.Tensor, w: torch.Tensor):
        slots = self.t.slots_of(s, d)
        missing = slots < 0
        if bool(missing.any()):
            i = int(missing.nonzero()[0])
            raise EditError(f"edge {int(s[i])} -> {int(d[i])} does not exist")
        self.weight_sets.append([slots, w])

    # --- remove_dead, vectorised over neurons and edges
    def current_weights(self, slots: torch.Tensor) -> torch.Tensor:
        """Weights of live slots as they will be after this batch so far."""
        w = torch.zeros(len(slots), dtype=torch.float64)
        stored = slots < self.net.edge_capacity
        w[stored] = self.net.weight.detach()[slots[stored].to(self.net.weight.device)].double().cpu()
        for arrays in self.new_arrays:
            w = self._overwrite(w, slots, arrays[0], arrays[3])
        if self.new_edges:
            single = torch.tensor(list(self.new_edges), dtype=torch.long)
            values = torch.tensor([v[2] for v in self.new_edges.values()], dtype=torch.float64)
            w = self._overwrite(w, slots, single, values)
        for pair in self.weight_sets:
            w = self._overwrite(w, slots, pair[0], pair[1])
        return w

    @staticmethod
    def _overwrite(w: torch.Tensor, slots: torch.Tensor, at: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        if not len(at):
            return w
        order = torch.argsort(at)
        at, values = at[order], values[order]
        pos = torch.searchsorted(at, slots).clamp(max=len(at) - 1)
        return torch.where(at[pos] == slots, values[pos], w)

    def current_biases(self, n: int) -> torch.Tensor:
        b = torch.zeros(n, dtype=torch.float64)
        k = min(n, self.net.capacity)
        b[:k] = self.net.bias.detach()[:k].double().cpu()
        for i, v in self.new_neurons.items():
            b[i] = v
        for i, v in self.bias_delta.items():
            b[i] += v
        return b

    def constant_values(self, n: int) -> torch.Tensor:
        """What each of the first n neurons outputs with no input: its activation of its bias
        (a neuron added by this batch runs the net's activation)."""
        b = self.current_biases(n)
        if not self.net.mixed_activations:
            return ACTIVATIONS[self.net.activation](b)
        default = ACTIVATION_NAMES.index(self.net.activation)
        codes = torch.full((n,), default, dtype=torch.int8)
        k = min(n, self.net.capacity)
        codes[:k] = self.net.neuron_activation[:k].cpu()
        if self.new_neurons:  # a slot this batch refills holds its old neuron's code until applied
            codes[torch.tensor(list(self.new_neurons), dtype=torch.long)] = default
        return MixedActivation(codes)(b[None])[0]

    def remove_dead(self):
        t = self.t
        while True:
            src, dst, slots = t.live_edges()
            alive = t.alive_tensor()
            n = len(alive)
            hidden = alive.clone()
            hidden[: t.n_fixed] = False
            proper = src != dst
            outdeg = torch.bincount(src[proper], minlength=n)[:n]
            indeg = torch.bincount(dst, minlength=n)[:n]
            no_out = hidden & (outdeg == 0)
            source = hidden & (indeg == 0) & (outdeg > 0)
            const = self.constant_values(n)
            if not t.dag:  # in recurrent mode the constant appears only from step 1 on
                source &= const == 0
            gone = no_out | source
            if not bool(gone.any()):
                return
            folding = source[src]
            if bool(folding.any()):
                targets = dst[folding]
                delta = self.current_weights(slots[folding]) * const[src[folding]]
                sums = torch.zeros(n, dtype=torch.float64).index_add_(0, targets, delta)
                for i in sums.nonzero().squeeze(1).tolist():
                    if not gone[i]:
                        self.bias_delta[i] += float(sums[i])
            touching = gone[src] | gone[dst]
            if bool(touching.any()):
                self._remove_edge_arrays(src[touching], dst[touching])
            self._retire_neurons(gone.nonzero().squeeze(1).tolist())

    def run(self, edits: Edits):
        for op in edits.ops:
            getattr(self, op[0])(*op[1:])

    def commit(self, optimizer):
        alive_deltas = [(i, v) for i, v in self.bias_delta.items() if v != 0.0]
        single = list(zip(*self.new_edges.values())) or [(), (), ()]
        columns = [list(self.new_edges), *single]  # slots, src, dst, weight of the single ops
        if self.new_arrays:
            new_slots, new_src, new_dst, new_weight = (
                torch.cat([torch.tensor(col, dtype=dtype)] + [a[k] for a in self.new_arrays])
                for k, (col, dtype) in enumerate(zip(columns, (torch.long,) * 3 + (torch.float64,))))
        else:  # single ops only: plain lists, no tensor built here
            new_slots, new_src, new_dst, new_weight = columns
        dead = sorted(self.dead_edges)
        if self.dead_arrays:
            dead = torch.cat([torch.tensor(dead, dtype=torch.long)] + self.dead_arrays)
        sets = [(s, w) for s, w in self.weight_sets if len(s)]
        self.net.write_structure(
            dead_edge_slots=dead, dead_neurons=sorted(self.dead_neurons),
            new_neurons=list(self.new_neurons), new_bias=list(self.new_neurons.values()),
            new_edge_slots=new_slots, new_src=new_src, new_dst=new_dst, new_weight=new_weight,
            bias_ids=[i for i, _ in alive_deltas], bias_delta=[v for _, v in alive_deltas],
            weight_slots=torch.cat([s for s, _ in sets]) if sets else None,
            weight_values=torch.cat([w for _, w in sets]) if sets else None,
            optimizer=optimizer)


def edit_index(net) -> EditIndex:
    """The net's index, built (with tensor operations) on first use."""
    if net.edit_index is None:
        net.edit_index = EditIndex(net)
    return net.edit_index


def apply_edits(net, edits: Edits, optimizer=None) -> Edits:
    """Apply `edits` to `net` atomically; returns `edits` with its references resolved."""
    import warnings
    if not isinstance(edits, Edits):
        raise EditError(f"expected an Edits object, got {type(edits).__name__}")
    if edits.applied:
        raise EditError("these Edits were already applied; build a new Edits for new changes")
    optimizer = as_optimizer_list(optimizer)  # checked before anything is written
    held = {id(p) for opt in optimizer for group in opt.param_groups for p in group["params"]}
    if optimizer and id(net.weight) not in held and id(net.bias) not in held:
        raise EditError("the optimizer holds none of this network's Parameters; build it on net.parameters() "
                        "(or on a module that contains the net) and pass that one")
    batch = _Batch(net, edit_index(net))
    try:
        batch.run(edits)
    except Exception:
        net.edit_index = None  # the index saw half the batch; rebuild it from the tensors
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
