"""Storage of a growing graph of units in input space, shared by GNG and DCS.

Capacity-padded, as GraphNet is. Units: positions (cap, dim), errors (cap,) float64 and an
`alive` mask; a unit is added by filling a free slot and removed by clearing its mask bit,
so indices stay put while the graph changes. Edges: padded arrays (u, v, value, alive) with
one value per edge (GNG: its age, DCS: its log-strength), and an incidence table inc (cap, K)
of edge ids with each row's live entries first (degree[u] of them), so a unit's edges are one
row and "is there an edge a-b" is one compare over K entries. Every array doubles when full,
so memory is O(units * K + edges), not O(units^2).

Single-edge operations (`add_edge`, `remove_edge`) serve the sequential modes; the array
forms (`add_edges`, `remove_edges`, `find_edges`) serve the batched ones, with tensor ops only.
"""
from __future__ import annotations

import torch


def _grown(t: torch.Tensor, size: int, fill, dim: int = 0) -> torch.Tensor:
    shape = list(t.shape)
    shape[dim] = size
    out = torch.full(shape, fill, dtype=t.dtype, device=t.device)
    out.narrow(dim, 0, t.shape[dim]).copy_(t)
    return out


class UnitGraph:
    """Units and undirected edges, on one device; `max_units` bounds the unit slots."""

    def __init__(self, dim: int, max_units: int, *, value_dtype: torch.dtype, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, capacity: int = 64, degree_slots: int = 8):
        self.dim, self.max_units, self.device = dim, max_units, device
        cap = min(max_units, capacity)
        self.pos = torch.zeros(cap, dim, dtype=dtype, device=device)
        self.error = torch.zeros(cap, dtype=torch.float64, device=device)
        self.alive = torch.zeros(cap, dtype=torch.bool, device=device)
        self.degree = torch.zeros(cap, dtype=torch.int64, device=device)
        self.inc = torch.full((cap, degree_slots), -1, dtype=torch.int64, device=device)
        e_cap = 2 * cap
        self.eu = torch.zeros(e_cap, dtype=torch.int64, device=device)
        self.ev = torch.zeros(e_cap, dtype=torch.int64, device=device)
        self.value = torch.zeros(e_cap, dtype=value_dtype, device=device)
        self.edge_alive = torch.zeros(e_cap, dtype=torch.bool, device=device)
        self.extra: dict[str, torch.Tensor] = {}  # further per-unit tensors (first axis = slot)
        self.n_alive = 0
        self.n_edges = 0

    # ------------------------------------------------------------------ units
    @property
    def capacity(self) -> int:
        return self.alive.shape[0]

    def add_field(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """Register a per-unit tensor (first axis = slot) that grows with the store."""
        self.extra[name] = tensor
        return tensor

    def reserve(self, n: int) -> None:
        """Room for at least n units (doubling, capped at max_units); slots keep their index."""
        cap = self.capacity
        if n <= cap:
            return
        new = min(self.max_units, max(n, 2 * cap))
        self.pos, self.error = _grown(self.pos, new, 0), _grown(self.error, new, 0)
        self.alive, self.degree = _grown(self.alive, new, False), _grown(self.degree, new, 0)
        self.inc = _grown(self.inc, new, -1)
        self.extra = {k: _grown(v, new, 0) for k, v in self.extra.items()}

    def free_slot(self) -> int:
        """The lowest dead slot, growing the store when every slot is in use."""
        if self.n_alive >= self.capacity:
            self.reserve(self.capacity + 1)
        return int(torch.argmin(self.alive.to(torch.uint8)))

    def revive(self, slot: int, pos: torch.Tensor) -> None:
        self.pos[slot] = pos
        self.error[slot] = 0
        self.alive[slot] = True
        for t in self.extra.values():
            t[slot] = 0
        self.n_alive += 1

    def kill(self, slots: torch.Tensor) -> None:
        """Remove the units in `slots` (an index tensor) together with their edges."""
        if not len(slots):
            return
        ids = self.inc[slots].reshape(-1)
        self.remove_edges(torch.unique(ids[ids >= 0]))
        self.alive[slots] = False
        self.error[slots] = 0
        self.n_alive = int(self.alive.sum())

    # ------------------------------------------------------------------ edges
    def other_end(self, ids: torch.Tensor, unit) -> torch.Tensor:
        """The end of each edge in `ids` that is not `unit` (garbage where ids < 0)."""
        ids = ids.clamp_min(0)
        return self.eu[ids] + self.ev[ids] - unit

    def neighbours(self, unit: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(edge ids, neighbour slots) of a unit's live edges (copies: edits do not move them)."""
        ids = self.inc[unit, :int(self.degree[unit])].clone()
        return ids, self.eu[ids] + self.ev[ids] - unit

    def _free_edges(self, m: int) -> torch.Tensor:
        if self.n_edges + m > len(self.edge_alive):
            new = max(2 * len(self.edge_alive), self.n_edges + m)
            self.eu, self.ev = _grown(self.eu, new, 0), _grown(self.ev, new, 0)
            self.value, self.edge_alive = _grown(self.value, new, 0), _grown(self.edge_alive, new, False)
        if m == 1:
            return torch.argmin(self.edge_alive.to(torch.uint8)).reshape(1)
        return torch.nonzero(~self.edge_alive).squeeze(1)[:m]

    def _widen(self, needed: int) -> None:
        if needed > self.inc.shape[1]:
            self.inc = _grown(self.inc, max(needed, 2 * self.inc.shape[1]), -1, dim=1)

    def add_edge(self, a: int, b: int, value) -> int:
        """One new edge a-b (a != b, not already there); returns its id."""
        e = int(self._free_edges(1))
        self.eu[e], self.ev[e], self.value[e], self.edge_alive[e] = a, b, value, True
        for unit in (a, b):
            k = int(self.degree[unit])
            self._widen(k + 1)
            self.inc[unit, k] = e
            self.degree[unit] = k + 1
        self.n_edges += 1
        return e

    def add_edges(self, a: torch.Tensor, b: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """New edges a[k]-b[k] (distinct pairs, none already there); returns their ids."""
        m = len(a)
        if not m:
            return a
        ids = self._free_edges(m)
        self.eu[ids], self.ev[ids], self.value[ids], self.edge_alive[ids] = a, b, value.to(self.value.dtype), True
        rows, eids = torch.cat([a, b]), torch.cat([ids, ids])
        rows, order = torch.sort(rows, stable=True)
        eids = eids[order]
        _, counts = torch.unique_consecutive(rows, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(rows), device=rows.device) - torch.repeat_interleave(starts, counts)
        slot = self.degree[rows] + rank
        self._widen(int(slot.max()) + 1)
        self.inc[rows, slot] = eids
        self.degree.index_add_(0, rows, torch.ones_like(rows))
        self.n_edges += m
        return ids

    def remove_edge(self, e: int) -> None:
        """Remove edge e: the last entry of each end's row moves into its place."""
        for unit in (int(self.eu[e]), int(self.ev[e])):
            last = int(self.degree[unit]) - 1
            row = self.inc[unit]
            k = int(torch.nonzero(row[:last + 1] == e)[0])
            row[k] = row[last]
            row[last] = -1
            self.degree[unit] = last
        self.edge_alive[e] = False
        self.n_edges -= 1

    def remove_edges(self, ids: torch.Tensor) -> None:
        """Remove the edges in `ids` (distinct live ids); the rows they were in are re-packed."""
        if not len(ids):
            return
        rows = torch.unique(torch.cat([self.eu[ids], self.ev[ids]]))
        self.edge_alive[ids] = False
        block = self.inc[rows]
        block = torch.where(self.edge_alive[block.clamp_min(0)] & (block >= 0), block, -1)
        order = torch.sort((block < 0).to(torch.uint8), dim=1, stable=True).indices
        self.inc[rows] = block.gather(1, order)
        self.degree[rows] = (block >= 0).sum(1)
        self.n_edges -= len(ids)

    def find_edges(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The id of edge a[k]-b[k], or -1 where there is none."""
        ids = self.inc[a]
        hit = (ids >= 0) & (self.other_end(ids, a.unsqueeze(1)) == b.unsqueeze(1))
        return torch.where(hit.any(1), ids.gather(1, hit.to(torch.uint8).argmax(1, keepdim=True)).squeeze(1), -1)

    def live_edges(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, u, v) of every live edge."""
        ids = torch.nonzero(self.edge_alive).squeeze(1)
        return ids, self.eu[ids], self.ev[ids]

    def compact(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(nodes (N, dim), edges (M, 2) with i < j in compact indices, slots (N,)) of the live
        units, in slot order."""
        slots = torch.nonzero(self.alive).squeeze(1)
        index = torch.full((self.capacity,), -1, dtype=torch.int64, device=self.pos.device)
        index[slots] = torch.arange(len(slots), device=self.pos.device)
        _, u, v = self.live_edges()
        i, j = index[u], index[v]
        edges = torch.stack([torch.minimum(i, j), torch.maximum(i, j)], 1)
        return self.pos[slots].clone(), edges[torch.argsort(edges[:, 0] * len(slots) + edges[:, 1])], slots

    def to(self, device: str) -> UnitGraph:
        self.device = device
        for name in ("pos", "error", "alive", "degree", "inc", "eu", "ev", "value", "edge_alive"):
            setattr(self, name, getattr(self, name).to(device))
        self.extra = {k: v.to(device) for k, v in self.extra.items()}
        return self
