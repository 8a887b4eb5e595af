"""Compatibility distance (Stanley & Miikkulainen 2002, section 3.3), every genome against a few.

    delta = c1 * E / N + c2 * D / N + c3 * W

E: excess genes (beyond the other genome's largest innovation number), D: disjoint genes (the
other unmatched ones), W: mean |weight difference| of the matching genes (disabled ones
included), N: genes in the larger genome, or 1 when it has fewer than
`compatibility_small_genome` genes (the paper: 20). Genes are aligned by innovation number.

The few genomes compared against (species representatives) are laid out densely by
innovation number, so matching is one gather for all (genome, representative) pairs; chunks
over the representatives bound the memory. What the many genomes contribute (a `GenePool`) is
worked out once per population and shared by every comparison speciation makes.
"""
from __future__ import annotations

import torch

from .genome import Genomes

CHUNK_ELEMENTS = 1 << 22  # (reps, P, G) elements per chunk
_NO_KEY = torch.iinfo(torch.int64).max  # the sort key of an empty slot


class GenePool:
    """What the distance reads of the many genomes compared (their genes' innovation numbers
    and weights), worked out once and reused against every set of representatives."""

    def __init__(self, innov: torch.Tensor, weight: torch.Tensor, width: int | None = None,
                 canonical: bool = False):
        self.innov, self.weight = innov, weight
        self.valid = innov >= 0
        self.flat = innov.clamp(min=0).reshape(-1)
        self.count = self.valid.sum(1)
        top = torch.where(self.valid, innov, -1).max(1).values
        self.top_ok, self.top_at = top >= 0, top.clamp(min=0)
        # sorted keys, empty slots last: genes past a number are counted by one search
        # (canonical rows, as a population's always are, hold them in that order already)
        self.keys = torch.where(self.valid, innov, _NO_KEY)
        if not canonical:
            self.keys = self.keys.sort(1).values
        self.canonical = canonical
        # columns a dense lookup by innovation number needs (any larger bound works too)
        self.width = width if width is not None else int(self.flat.max()) + 1 if self.flat.numel() else 1
        self._columns = None  # (width, lookup columns), see columns()

    def __len__(self) -> int:
        return self.innov.shape[0]

    def columns(self, width: int) -> torch.Tensor:
        """(P * G,) each gene's column in a representatives' table of width + 2 columns: its
        innovation number, or for an empty slot the last column, which stays NaN."""
        if self._columns is None or self._columns[0] != width:
            self._columns = (width, torch.where(self.valid, self.innov, width + 1).reshape(-1))
        return self._columns[1]

    def rows(self, index: torch.Tensor) -> GenePool:
        return GenePool(self.innov.index_select(0, index), self.weight.index_select(0, index), self.width,
                        self.canonical)


def compatibility(genomes: Genomes, reps: Genomes, n_innovations: int, c_excess: float, c_disjoint: float,
                  c_weight: float, small_genome: int) -> torch.Tensor:
    """(P, S) distances of every genome to every representative."""
    return pool_distances(GenePool(genomes.innov, genomes.weight), reps.innov, reps.weight, n_innovations,
                          c_excess, c_disjoint, c_weight, small_genome)


def pool_distances(pool: GenePool, rep_innov: torch.Tensor, rep_weight: torch.Tensor, n_innovations: int,
                   c_excess: float, c_disjoint: float, c_weight: float, small_genome: int) -> torch.Tensor:
    """(P, S) distances of the pool's genomes to S representatives given by their genes."""
    P, S = len(pool), len(rep_innov)
    if S == 0:
        return torch.empty(P, S, dtype=pool.weight.dtype)
    width = max(n_innovations, pool.width, 1)
    step = max(1, CHUNK_ELEMENTS // max(1, pool.innov.numel()))
    if S <= step:
        return _against(pool, rep_innov, rep_weight, width, c_excess, c_disjoint, c_weight,
                        small_genome).t().contiguous()
    out = torch.empty(P, S, dtype=pool.weight.dtype)
    for a in range(0, S, step):
        out[:, a:a + step] = _against(pool, rep_innov[a:a + step], rep_weight[a:a + step], width,
                                      c_excess, c_disjoint, c_weight, small_genome).t()
    return out


def _against(pool: GenePool, rep_innov, rep_weight, width, c_excess, c_disjoint, c_weight, small_genome):
    S, (P, G) = len(rep_innov), pool.innov.shape
    rv = rep_innov >= 0
    # the representatives' weights laid out densely by innovation number, NaN where a rep has
    # no such gene (weights are clamped, never NaN); a rep's empty slots go to a spare column
    # that no lookup reads, and the pool's empty slots read the last column, always NaN. One
    # float lookup then gives both the match and the weight (a lookup in a bool table along
    # dim 1 was several times slower).
    column = torch.where(rv, rep_innov, width)
    w = torch.full((S, width + 2), torch.nan, dtype=pool.weight.dtype).scatter_(
        1, column, rep_weight.to(pool.weight.dtype))
    n_r = rv.sum(1)                                                   # (S,)
    top_r = torch.where(rv, rep_innov, -1).max(1).values              # (S,)
    w_rep = w.index_select(1, pool.columns(width)).view(S, P, G)
    m = (w_rep == w_rep).sum(-1)                                      # (S, P) matching genes
    # |dw| is NaN wherever a gene has no match, and nansum is where-then-sum to the bit
    # (the same reduction, NaN read as 0), two (S, P, G) passes fewer
    wdiff = (pool.weight - w_rep).abs().nansum(-1) / m.clamp(min=1)
    # genome genes past the rep's largest number: the genome's sorted keys, one search per rep
    past = torch.searchsorted(pool.keys, top_r[None, :].expand(P, S).contiguous(), right=True)
    excess_g = (pool.count[:, None] - past).t()                       # (S, P)
    below = (w == w).cumsum(1)                                         # rep genes with number <= i
    excess_r = n_r[:, None] - torch.where(pool.top_ok, below.index_select(1, pool.top_at), 0)
    excess = excess_g + excess_r
    n_g, n_r = pool.count[None, :], n_r[:, None]
    disjoint = n_g + n_r - 2 * m - excess  # the unmatched genes of both, less the excess ones
    n = torch.maximum(n_g, n_r)
    if small_genome > 0:
        n = torch.where(n < small_genome, 1, n)
    n = n.clamp(min=1).to(wdiff.dtype)
    return (c_excess * excess + c_disjoint * disjoint) / n + c_weight * wdiff


def distance(a: Genomes, b: Genomes, n_innovations: int, c_excess=1.0, c_disjoint=1.0, c_weight=0.4,
             small_genome=20) -> torch.Tensor:
    """(len(a), len(b)) distances; a helper over `compatibility` for tests and analysis."""
    return compatibility(a, b, n_innovations, c_excess, c_disjoint, c_weight, small_genome)
