"""The index `apply_edits` checks a batch against: which edges exist (and in which slot),
each neuron's neighbours, DAG levels, and the free slots, built with tensor operations.

Per-edge parts live in an edge table: `DenseEdgeTable` (an (N, N) matrix of slots) while the
neuron count squared is of the order of the edge count, else `SortedEdgeTable` (sorted 64-bit
keys, memory proportional to the edges). Per-neuron parts are Python lists: a net has few
neurons for its edges, and single ops read them one at a time.
"""
from __future__ import annotations

import heapq
import math
from collections import defaultdict

import torch

OUTPUT_LEVEL = math.inf  # outputs are always last in DAG mode
KEY_SHIFT = 32               # edge key = src << 32 | dst
KEY_LOW = (1 << KEY_SHIFT) - 1


def _sorted_keys(keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    keys, order = torch.sort(keys)
    return keys, values[order]


class DenseEdgeTable:
    """Edge lookup as an (N, N) matrix of slots (-1: no edge): every lookup, insertion and
    removal is one gather or scatter. Used while N*N is of the order of the edge count."""

    def __init__(self, n: int, src: torch.Tensor, dst: torch.Tensor, slots: torch.Tensor):
        self.matrix = torch.full((n, n), -1, dtype=torch.int32)
        self.matrix[src, dst] = slots.to(torch.int32)

    def ensure(self, n: int) -> None:
        """Room for neuron ids below n (doubling)."""
        size = len(self.matrix)
        if n > size:
            grown = torch.full((max(2 * size, n),) * 2, -1, dtype=torch.int32)
            grown[:size, :size] = self.matrix
            self.matrix = grown

    def slot_of(self, s: int, d: int) -> int | None:
        if s >= len(self.matrix) or d >= len(self.matrix):
            return None
        slot = int(self.matrix[s, d])
        return None if slot < 0 else slot

    def slots_of(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        n = len(self.matrix)
        if not len(src) or (int(src.max()) < n and int(dst.max()) < n):
            return self.matrix[src, dst].long()
        inside = (src < n) & (dst < n)
        out = torch.full(src.shape, -1, dtype=torch.long)
        out[inside] = self.matrix[src[inside], dst[inside]].long()
        return out

    def successors(self, u: int) -> list[int]:
        return (self.matrix[u] >= 0).nonzero().squeeze(1).tolist() if u < len(self.matrix) else []

    def predecessors(self, v: int) -> list[int]:
        return (self.matrix[:, v] >= 0).nonzero().squeeze(1).tolist() if v < len(self.matrix) else []

    def add(self, s: int, d: int, slot: int) -> None:
        self.ensure(max(s, d) + 1)
        self.matrix[s, d] = slot

    def remove(self, s: int, d: int) -> None:
        self.matrix[s, d] = -1

    def insert(self, src: torch.Tensor, dst: torch.Tensor, slots: torch.Tensor) -> None:
        if len(src):
            self.ensure(int(torch.maximum(src.max(), dst.max())) + 1)
            self.matrix[src, dst] = slots.to(torch.int32)

    def delete(self, src: torch.Tensor, dst: torch.Tensor) -> None:
        self.matrix[src, dst] = -1

    def live_edges(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src, dst = (self.matrix >= 0).nonzero().unbind(1)
        return src, dst, self.matrix[src, dst].long()


class SortedEdgeTable:
    """Edge lookup by sorted keys (src << 32 | dst) with their slots, and the same keys by
    target for predecessors: memory proportional to the edges, for big sparse graphs. Single
    ops change a small overlay of added and removed edges instead (a sorted tensor cannot
    take one insertion cheaply), folded into the tensors when it grows."""

    FOLD_AT = 4096

    def __init__(self, src: torch.Tensor, dst: torch.Tensor, slots: torch.Tensor):
        self.out_keys, self.out_slots = _sorted_keys((src << KEY_SHIFT) | dst, slots)
        self.in_keys = torch.sort((dst << KEY_SHIFT) | src).values
        self.added: dict[tuple[int, int], int] = {}       # overlay: edges not in the tensors
        self.removed: set[tuple[int, int]] = set()         # overlay: tensor edges that are gone
        self.added_succ, self.added_pred = defaultdict(set), defaultdict(set)

    def slot_of(self, s: int, d: int) -> int | None:
        key = (s, d)
        if key in self.added:
            return self.added[key]
        if key in self.removed:
            return None
        k = (s << KEY_SHIFT) | d
        pos = int(torch.searchsorted(self.out_keys, k))
        if pos < len(self.out_keys) and int(self.out_keys[pos]) == k:
            return int(self.out_slots[pos])
        return None

    def successors(self, u: int) -> list[int]:
        lo, hi = torch.searchsorted(self.out_keys, torch.tensor([u << KEY_SHIFT, (u + 1) << KEY_SHIFT])).tolist()
        out = [k & KEY_LOW for k in self.out_keys[lo:hi].tolist()]
        if self.removed:
            out = [d for d in out if (u, d) not in self.removed]
        return out + list(self.added_succ.get(u, ()))

    def predecessors(self, v: int) -> list[int]:
        lo, hi = torch.searchsorted(self.in_keys, torch.tensor([v << KEY_SHIFT, (v + 1) << KEY_SHIFT])).tolist()
        out = [k & KEY_LOW for k in self.in_keys[lo:hi].tolist()]
        if self.removed:
            out = [s for s in out if (s, v) not in self.removed]
        return out + list(self.added_pred.get(v, ()))

    def add(self, s: int, d: int, slot: int) -> None:
        self.added[(s, d)] = slot
        self.added_succ[s].add(d)
        self.added_pred[d].add(s)

    def remove(self, s: int, d: int) -> None:
        if (s, d) in self.added:
            del self.added[(s, d)]
            self.added_succ[s].discard(d)
            self.added_pred[d].discard(s)
        else:
            self.removed.add((s, d))
        if len(self.added) + len(self.removed) > self.FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Move the overlay into the sorted tensors."""
        if self.removed:
            pairs = torch.tensor(list(self.removed), dtype=torch.long).reshape(-1, 2)
            self.removed = set()
            self._delete_sorted(pairs[:, 0], pairs[:, 1])
        if self.added:
            pairs = torch.tensor(list(self.added), dtype=torch.long).reshape(-1, 2)
            slots = torch.tensor(list(self.added.values()), dtype=torch.long)
            self.added = {}
            self.insert(pairs[:, 0], pairs[:, 1], slots)
        self.added_succ, self.added_pred = defaultdict(set), defaultdict(set)

    def insert(self, src: torch.Tensor, dst: torch.Tensor, slots: torch.Tensor) -> None:
        """Add edges (none of which exists)."""
        self.out_keys, self.out_slots = _sorted_keys(torch.cat([self.out_keys, (src << KEY_SHIFT) | dst]),
                                                     torch.cat([self.out_slots, slots]))
        self.in_keys = torch.sort(torch.cat([self.in_keys, (dst << KEY_SHIFT) | src])).values

    def delete(self, src: torch.Tensor, dst: torch.Tensor) -> None:
        """Remove existing edges."""
        if self.added or self.removed:
            self.fold()
        self._delete_sorted(src, dst)

    def _delete_sorted(self, src: torch.Tensor, dst: torch.Tensor) -> None:
        self.out_keys, self.out_slots = self._without(self.out_keys, (src << KEY_SHIFT) | dst, self.out_slots)
        self.in_keys = self._without(self.in_keys, (dst << KEY_SHIFT) | src)

    @staticmethod
    def _without(sorted_keys: torch.Tensor, keys: torch.Tensor, values: torch.Tensor | None = None):
        """`sorted_keys` (and `values` beside them) without `keys`, all of which it holds:
        found by binary search, dropped by one mask (torch.isin sorts both sides)."""
        keep = torch.ones(len(sorted_keys), dtype=torch.bool)
        keep[torch.searchsorted(sorted_keys, keys)] = False
        return sorted_keys[keep] if values is None else (sorted_keys[keep], values[keep])

    def slots_of(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        keys = (src << KEY_SHIFT) | dst
        slots = torch.full_like(keys, -1)
        if len(self.out_keys):
            pos = torch.searchsorted(self.out_keys, keys).clamp_(max=len(self.out_keys) - 1)
            slots = torch.where(self.out_keys[pos] == keys, self.out_slots[pos], slots)
        if self.removed:
            gone = torch.tensor([(s << KEY_SHIFT) | d for s, d in self.removed], dtype=torch.long)
            slots[torch.isin(keys, gone)] = -1
        if self.added:
            added_keys, added_slots = _sorted_keys(
                torch.tensor([(s << KEY_SHIFT) | d for s, d in self.added], dtype=torch.long),
                torch.tensor(list(self.added.values()), dtype=torch.long))
            pos = torch.searchsorted(added_keys, keys).clamp(max=len(added_keys) - 1)
            slots = torch.where(added_keys[pos] == keys, added_slots[pos], slots)
        return slots

    def live_edges(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.fold()
        return self.out_keys >> KEY_SHIFT, self.out_keys & KEY_LOW, self.out_slots


class EditIndex:
    """Index over a GraphNet's topology, kept in step with its tensors by apply_edits.

    Per-edge parts are an edge table built with tensor operations (`DenseEdgeTable` while
    the neuron count squared is of the order of the edge count, else `SortedEdgeTable`).
    Per-neuron parts (liveness, DAG levels, free ids) are Python lists: a net has few
    neurons for its edges, and single ops read them one at a time.
    """

    DENSE_MIN_ENTRIES = 1 << 22   # an (N, N) table is always fine below 16 MB
    DENSE_PER_EDGE = 8            # ... and above it while N*N <= 8 * edges (int32: 32 B an edge)

    def __init__(self, net):
        self.dag = net.mode == "dag"
        self.n_in, self.n_fixed = net.n_in, net.n_in + net.n_out
        self.alive = net.neuron_alive.tolist()
        slots = net.edge_alive.nonzero().squeeze(1)
        src, dst = net.edge_src[slots].long().cpu(), net.edge_dst[slots].long().cpu()
        slots = slots.cpu()
        n = net.capacity
        if n * n <= max(self.DENSE_MIN_ENTRIES, self.DENSE_PER_EDGE * len(slots)):
            self.edges = DenseEdgeTable(n, src, dst, slots)
        else:
            self.edges = SortedEdgeTable(src, dst, slots)
        self.level = None
        if self.dag:
            self.level = [float(v) for v in net.levels().tolist()]
            for o in range(self.n_in, self.n_fixed):
                self.level[o] = OUTPUT_LEVEL
        self.neuron_high = max((i for i, a in enumerate(self.alive) if a), default=0) + 1
        self.free_neurons = [i for i in range(self.n_fixed, self.neuron_high) if not self.alive[i]]
        heapq.heapify(self.free_neurons)
        self.edge_high = int(slots.max()) + 1 if len(slots) else 0
        # Free slots are handed out lowest first: the order then depends only on which slots
        # are free, so an index rebuilt from the tensors (after npl.load, or after a refused
        # batch) places later edges exactly where the running index would have. The bulk of
        # them is a sorted tensor read from `free_at`; slots freed by single ops go to a heap.
        self.free_slots = (~net.edge_alive[: self.edge_high]).nonzero().squeeze(1).cpu()
        self.free_at = 0
        self.freed: list[int] = []
        self.freed_arrays: list[torch.Tensor] = []  # merged in only when a slot is asked for

    # --- neurons
    def is_alive(self, i: int) -> bool:
        return 0 <= i < len(self.alive) and self.alive[i]

    def alive_tensor(self) -> torch.Tensor:
        return torch.tensor(self.alive, dtype=torch.bool)

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

    # --- edge slots
    def _merge_freed_arrays(self) -> None:
        if self.freed_arrays:
            merged = torch.cat([self.free_slots[self.free_at:], *self.freed_arrays])
            self.free_slots, self.free_at, self.freed_arrays = torch.sort(merged).values, 0, []

    def new_edge_slot(self) -> int:
        self._merge_freed_arrays()
        base = int(self.free_slots[self.free_at]) if self.free_at < len(self.free_slots) else None
        if self.freed and (base is None or self.freed[0] < base):
            return heapq.heappop(self.freed)
        if base is not None:
            self.free_at += 1
            return base
        self.edge_high += 1
        return self.edge_high - 1

    def new_edge_slots(self, k: int) -> torch.Tensor:
        """The k lowest free slots, as one tensor."""
        self._merge_freed_arrays()
        pool = torch.cat([self.free_slots[self.free_at:], torch.tensor(sorted(self.freed), dtype=torch.long)])
        pool = torch.sort(pool).values
        taken, rest = pool[:k], pool[k:]
        self.free_slots, self.free_at, self.freed = rest, 0, []
        extra = k - len(taken)
        if extra > 0:
            taken = torch.cat([taken, torch.arange(self.edge_high, self.edge_high + extra)])
            self.edge_high += extra
        return taken

    def free_edge_slots(self, slots: torch.Tensor) -> None:
        if len(slots) <= 8:
            for s in slots.tolist():
                heapq.heappush(self.freed, s)
        else:
            self.freed_arrays.append(slots)

    # --- edges (see the edge tables)
    def slot_of(self, s: int, d: int) -> int | None:
        return self.edges.slot_of(s, d)

    def slots_of(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """Slot of every edge src[i] -> dst[i], -1 where there is none."""
        return self.edges.slots_of(src, dst)

    def successors(self, u: int) -> list[int]:
        return self.edges.successors(u)

    def predecessors(self, v: int) -> list[int]:
        return self.edges.predecessors(v)

    def live_edges(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(src, dst, slot) of every live edge, sorted by (src, dst)."""
        return self.edges.live_edges()

    # --- DAG levels
    def reaches(self, start: int, target: int) -> bool:
        """Is there a path start ~> target? Only neurons below target's level can lie on it."""
        limit = self.level[target]
        stack, seen = [start], {start}
        while stack:
            u = stack.pop()
            if u == target:
                return True
            for v in self.successors(u):
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
            for v in self.successors(u):
                if self.level[v] <= self.level[u]:
                    self.level[v] = self.level[u] + 1
                    stack.append(v)
