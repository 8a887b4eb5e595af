"""A population of NEAT genomes as padded tensors (TensorNEAT's layout, with enabled bits).

Connection genes, `(P, G_cap)`: `innov` (innovation number, -1 for an empty slot), `src`,
`dst` (node ids), `weight`, `enabled`. Node genes, `(P, N_cap)`: `node_id` (-1 empty),
`bias`, `response`, `act` (index into `ACTIVATION_LIST`). Node ids are the phenotype's
numbering: inputs 0..n_in-1, outputs n_in..n_in+n_out-1, hidden nodes above (global ids from
the innovation table). In canonical form every row is sorted (genes by innovation number,
nodes by id) with the empty slots last, so a node's slot in its row is its GraphBatch neuron
id and matching genes of two genomes are found by binary search.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from .config import ACTIVATIONS

ACTIVATION_LIST = tuple(ACTIVATIONS)
BIG = torch.iinfo(torch.int64).max  # the sort key of an empty slot
GENOME_DTYPES = {"innov": torch.int64, "src": torch.int64, "dst": torch.int64, "weight": torch.float32,
                 "enabled": torch.bool, "node_id": torch.int64, "bias": torch.float32, "response": torch.float32,
                 "act": torch.int64}
COUNT_SEARCH_MAX = 12  # node capacity up to which `slots` counts instead of searching


@dataclass
class Genomes:
    innov: torch.Tensor     # (P, G) int64
    src: torch.Tensor       # (P, G) int64
    dst: torch.Tensor       # (P, G) int64
    weight: torch.Tensor    # (P, G) float32
    enabled: torch.Tensor   # (P, G) bool
    node_id: torch.Tensor   # (P, N) int64
    bias: torch.Tensor      # (P, N) float32
    response: torch.Tensor  # (P, N) float32
    act: torch.Tensor       # (P, N) int64

    CONN = ("innov", "src", "dst", "weight", "enabled")
    NODE = ("node_id", "bias", "response", "act")

    def __len__(self) -> int:
        return self.innov.shape[0]

    @property
    def conn_valid(self) -> torch.Tensor:
        return self.innov >= 0

    @property
    def node_valid(self) -> torch.Tensor:
        return self.node_id >= 0

    def n_genes(self) -> torch.Tensor:
        return self.conn_valid.sum(1)

    def n_enabled(self) -> torch.Tensor:
        return (self.conn_valid & self.enabled).sum(1)

    def n_hidden(self, n_fixed: int) -> torch.Tensor:
        return (self.node_id >= n_fixed).sum(1)

    def take(self, index: torch.Tensor, skip: tuple[str, ...] = ()) -> Genomes:
        """The rows `index` (a copy); the fields named in `skip` are left None (a reader that
        never looks at them saves their copies). A long index goes through index_select, which
        is several times faster than advanced indexing for row gathers."""
        if torch.is_tensor(index) and index.dtype == torch.bool:
            index = index.nonzero().squeeze(1)
        names = [f.name for f in fields(self)]
        if not torch.is_tensor(index) or index.dim() != 1:
            return Genomes(**{n: None if n in skip else getattr(self, n)[index] for n in names})
        return Genomes(**{n: None if n in skip else getattr(self, n).index_select(0, index) for n in names})

    def replace(self, **tensors) -> Genomes:
        return Genomes(**{f.name: tensors.get(f.name, getattr(self, f.name)) for f in fields(self)})

    @staticmethod
    def cat(parts: list[Genomes]) -> Genomes:
        g = max(p.innov.shape[1] for p in parts)
        n = max(p.node_id.shape[1] for p in parts)
        parts = [p.padded(g, n) for p in parts]
        return Genomes(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Genomes)})

    def padded(self, g_cap: int, n_cap: int) -> Genomes:
        """Columns added (empty slots) up to g_cap genes and n_cap nodes."""
        def pad(t, size, fill):
            extra = size - t.shape[1]
            return t if extra <= 0 else torch.nn.functional.pad(t, (0, extra), value=fill)

        out = {}
        for name in self.CONN:
            out[name] = pad(getattr(self, name), g_cap, -1 if name == "innov" else 0)
        for name in self.NODE:
            out[name] = pad(getattr(self, name), n_cap, -1 if name == "node_id" else 0)
        return Genomes(**out)

    def canonical(self) -> Genomes:
        """Rows sorted (genes by innovation, nodes by id), empty slots zeroed and last, and the
        capacity trimmed to the fullest row."""
        ck = torch.where(self.conn_valid, self.innov, BIG)
        ck, corder = ck.sort(1)
        nk = torch.where(self.node_valid, self.node_id, BIG)
        nk, norder = nk.sort(1)
        # sorted, the valid keys lead every row: the fullest row is as long as the run of columns
        # holding a valid key in some row (a min over the rows, cheaper than counting each row)
        g_cap = max(1, int((ck.min(0).values != BIG).sum())) if self.innov.numel() else 1
        n_cap = int((nk.min(0).values != BIG).sum())
        out = {}
        corder, norder = corder[:, :g_cap], norder[:, :n_cap]
        # an empty slot's innov and node_id are already -1 (the only value ever written for
        # one), so only the other fields need their stale values zeroed
        empty = ck[:, :g_cap] == BIG
        for name in self.CONN:
            t = getattr(self, name).gather(1, corder)
            out[name] = t if name == "innov" else t.masked_fill_(empty, 0)
        empty = nk[:, :n_cap] == BIG
        for name in self.NODE:
            t = getattr(self, name).gather(1, norder)
            out[name] = t if name == "node_id" else t.masked_fill_(empty, 0)
        if out["innov"].shape[1] < g_cap:  # an empty population row set: keep one slot
            return Genomes(**out).padded(g_cap, n_cap)
        return Genomes(**out)

    def slots(self, ids: torch.Tensor, fixed: int = 0) -> torch.Tensor:
        """(P, K) node ids -> their slots in each row. The valid ids of a row must ascend, with
        empty slots anywhere (a running maximum keeps the search keys sorted across them).
        `fixed`: the first `fixed` slots of every row hold ids 0..fixed-1 (NEAT's inputs and
        outputs, never deleted), so they need no look."""
        N = self.node_id.shape[1]
        if N > COUNT_SEARCH_MAX:
            key = torch.where(self.node_valid, self.node_id, -1).cummax(1).values
            return torch.searchsorted(key.contiguous(), ids.contiguous()).clamp(max=N - 1)
        # narrow rows: count the keys below each id column by column (what a left search
        # returns), branch-free; the batched binary search mispredicts on unsorted ids and
        # was ~3x slower here at N = 6 and 30 ids a row. The fixed slots count min(id, fixed),
        # and an empty slot after them takes the running maximum, which is at least fixed - 1.
        fixed = min(fixed, N)
        key = torch.where(self.node_valid[:, fixed:], self.node_id[:, fixed:], fixed - 1).cummax(1).values
        if fixed:
            below = ids.clamp(0, fixed).to(torch.uint8)
        else:
            below = (key[:, :1] < ids).to(torch.uint8)
        for j in range(0 if fixed else 1, N - fixed):
            below += key[:, j:j + 1] < ids
        return below.long().clamp_(max=N - 1)

    def state(self) -> dict:
        return {f.name: getattr(self, f.name).clone() for f in fields(self)}

    @staticmethod
    def from_state(state: dict) -> Genomes:
        return Genomes(**{f.name: state[f.name].clone() for f in fields(Genomes)})
