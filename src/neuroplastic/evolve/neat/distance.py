"""Compatibility distance (Stanley & Miikkulainen 2002, section 3.3), every genome against a few.

    delta = c1 * E / N + c2 * D / N + c3 * W

E: excess genes (beyond the other genome's largest innovation number), D: disjoint genes (the
other unmatched ones), W: mean |weight difference| of the matching genes (disabled ones
included), N: genes in the larger genome, or 1 when it has fewer than
`compatibility_small_genome` genes (the paper: 20). Genes are aligned by innovation number.

The few genomes compared against (species representatives) are laid out densely by
innovation number, so matching is one gather for all (genome, representative) pairs; chunks
over the representatives bound the memory.
"""
from __future__ import annotations

import torch

from .genome import Genomes

CHUNK_ELEMENTS = 1 << 22  # (reps, P, G) elements per chunk


def compatibility(genomes: Genomes, reps: Genomes, n_innovations: int, c_excess: float, c_disjoint: float,
                  c_weight: float, small_genome: int) -> torch.Tensor:
    """(P, S) distances of every genome to every representative."""
    P, S = len(genomes), len(reps)
    out = torch.empty(P, S, dtype=genomes.weight.dtype)
    if S == 0:
        return out
    valid = genomes.conn_valid
    idx = genomes.innov.clamp(min=0)
    n_g = valid.sum(1)
    top_g = torch.where(valid, genomes.innov, -1).max(1).values
    step = max(1, CHUNK_ELEMENTS // max(1, genomes.innov.numel()))
    for a in range(0, S, step):
        r = reps.take(torch.arange(a, min(S, a + step)))
        out[:, a:a + len(r)] = _against(genomes, valid, idx, n_g, top_g, r, n_innovations,
                                        c_excess, c_disjoint, c_weight, small_genome).t()
    return out


def _against(genomes, valid, idx, n_g, top_g, reps, n_innov, c_excess, c_disjoint, c_weight, small_genome):
    S = len(reps)
    rv = reps.conn_valid
    width = max(n_innov, int(idx.max()) + 1 if idx.numel() else 1, 1)
    rows = torch.arange(S)[:, None].expand_as(reps.innov)
    has = torch.zeros(S, width, dtype=torch.bool)
    has[rows[rv], reps.innov[rv]] = True
    w = torch.zeros(S, width, dtype=genomes.weight.dtype)
    w[rows[rv], reps.innov[rv]] = reps.weight[rv]
    n_r = rv.sum(1)                                                   # (S,)
    top_r = torch.where(rv, reps.innov, -1).max(1).values             # (S,)
    flat = idx.reshape(-1)
    match = has.index_select(1, flat).view(S, *idx.shape) & valid     # (S, P, G)
    m = match.sum(-1)                                                 # (S, P)
    w_rep = w.index_select(1, flat).view(S, *idx.shape)
    wdiff = torch.where(match, (genomes.weight - w_rep).abs(), 0.0).sum(-1) / m.clamp(min=1)
    # genome genes past the rep's largest number: the genome's sorted keys, one search per rep
    key = torch.where(valid, genomes.innov, torch.iinfo(genomes.innov.dtype).max).sort(1).values
    past = torch.searchsorted(key, top_r[None, :].expand(key.shape[0], S).contiguous(), right=True)
    excess_g = (n_g[:, None] - past).t()                              # (S, P)
    below = has.cumsum(1)                                              # rep genes with number <= i
    excess_r = n_r[:, None] - torch.where(top_g >= 0, below.index_select(1, top_g.clamp(min=0)), 0)
    excess = excess_g + excess_r
    disjoint = (n_g - m - excess_g) + (n_r[:, None] - m - excess_r)
    n = torch.maximum(n_g[None, :], n_r[:, None])
    n = torch.where(n < small_genome, 1, n).clamp(min=1).to(wdiff.dtype)
    return (c_excess * excess + c_disjoint * disjoint) / n + c_weight * wdiff


def distance(a: Genomes, b: Genomes, n_innovations: int, c_excess=1.0, c_disjoint=1.0, c_weight=0.4,
             small_genome=20) -> torch.Tensor:
    """(len(a), len(b)) distances; a helper over `compatibility` for tests and analysis."""
    return compatibility(a, b, n_innovations, c_excess, c_disjoint, c_weight, small_genome)
