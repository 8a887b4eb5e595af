"""Reproduction over the whole population at once: parents, elites, crossover.

Within each species (members ranked by fitness): the top `elitism` genomes are copied
unchanged, and the other offspring have parents drawn from the top `survival_threshold`
fraction (at least 2, neat-python's rule). A fraction `mutate_only_prob` of offspring have
one parent (the paper's 25% mutation without crossover); with `interspecies_crossover_prob`
the second parent comes from anywhere in the population. Crossover aligns genes by
innovation number: matching genes come from either parent at random, disjoint and excess
genes from the fitter parent (on equal fitness, from one parent picked at random: the union
of two feed-forward genomes can hold a cycle). A gene disabled in either parent is disabled
in the child with probability 0.75, after inheritance (as neat-python 2.0).
"""
from __future__ import annotations

import torch

from .genome import BIG, Genomes


def _uniform(n: int, rng: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=rng)


def plan_offspring(fitness: torch.Tensor, member: torch.Tensor, spawn: torch.Tensor, cfg,
                   rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(parent1, parent2, elite) per child; parent1 is the fitter one, elite children copy it."""
    P, S = len(fitness), len(spawn)
    # genomes by species, then by fitness (best first)
    by_fitness = fitness.argsort(descending=True, stable=True)
    order = by_fitness[member[by_fitness].argsort(stable=True)]
    sizes = torch.bincount(member, minlength=S)
    start = sizes.cumsum(0) - sizes
    child_species = torch.repeat_interleave(torch.arange(S), spawn)
    C = len(child_species)
    # the per-species numbers each child needs, gathered in one index_select (cheaper than
    # four t[child_species], and the same values)
    elites = torch.where(sizes >= cfg.elitism_min_species_size, sizes.clamp(max=cfg.elitism), 0)
    first_child = spawn.cumsum(0) - spawn
    n, elites, base, first_child = torch.stack([sizes, elites, start, first_child]).index_select(
        1, child_species)
    rank = torch.arange(C) - first_child
    elite = rank < elites
    cutoff = torch.clamp(torch.ceil(cfg.survival_threshold * n.double()).long(), min=2)
    cutoff = torch.minimum(cutoff, n)
    # k uniform draws of C at once are the same numbers as k draws of C one after another
    r1, r2 = (_uniform(2 * C, rng).view(2, C) * cutoff).long().clamp(max=cutoff - 1)
    p1 = torch.where(elite, order.index_select(0, base + rank.clamp(max=n - 1)), order.index_select(0, base + r1))
    p2 = order.index_select(0, base + r2)
    other = torch.randint(P, (C,), generator=rng)
    interspecies, mutate_only, tie = _uniform(3 * C, rng).view(3, C)
    p2 = torch.where(interspecies < cfg.interspecies_crossover_prob, other, p2)
    p2 = torch.where(mutate_only < cfg.mutate_only_prob, p1, p2)
    p2 = torch.where(elite, p1, p2)
    # parent1 is the fitter; on a tie, either one at random
    f1, f2 = fitness.index_select(0, p1), fitness.index_select(0, p2)
    swap = (f2 > f1) | ((f2 == f1) & (tie < 0.5))
    p1, p2 = torch.where(swap, p2, p1), torch.where(swap, p1, p2)
    return p1, p2, elite


def crossover(a: Genomes, b: Genomes, rng: torch.Generator, disable_prob: float = 0.75,
              average_prob: float = 0.0) -> Genomes:
    """Children of row-aligned parents a (fitter: its genes and nodes make the child) and b. A
    fraction `average_prob` of children take the mean of the parents' weights and biases on
    matching genes and nodes (NEAT 1.2.1's mate_multipoint_avg) instead of one at random.
    Rows must be canonical (empty slots zeroed), as a population's are."""
    C, G = a.innov.shape
    kb = torch.where(b.conn_valid, b.innov, BIG).contiguous()
    idx = torch.searchsorted(kb, a.innov.clamp(min=0).contiguous()).clamp(max=kb.shape[1] - 1)
    match = kb.gather(1, idx) == a.innov  # an empty slot's -1 equals no key (>= 0 or BIG)
    coin = torch.rand(C, G, generator=rng) < 0.5
    take_b = match & coin
    b_enabled = b.enabled.gather(1, idx)
    weight = torch.where(take_b, b.weight.gather(1, idx), a.weight)
    enabled = torch.where(take_b, b_enabled, a.enabled)
    either_off = match & (~a.enabled | ~b_enabled)
    enabled = enabled & ~(either_off & (torch.rand(C, G, generator=rng) < disable_prob))
    nb = torch.where(b.node_valid, b.node_id, BIG).contiguous()
    nidx = torch.searchsorted(nb, a.node_id.clamp(min=0).contiguous()).clamp(max=nb.shape[1] - 1)
    nmatch = nb.gather(1, nidx) == a.node_id
    ntake = nmatch & (torch.rand(a.node_id.shape, generator=rng) < 0.5)
    bias = torch.where(ntake, b.bias.gather(1, nidx), a.bias)
    if average_prob > 0:
        avg = (torch.rand(C, generator=rng) < average_prob)[:, None]
        weight = torch.where(match & avg, (a.weight + b.weight.gather(1, idx)) / 2, weight)
        bias = torch.where(nmatch & avg, (a.bias + b.bias.gather(1, nidx)) / 2, bias)
    # a's empty slots keep a's enabled bit there, False in canonical rows
    return a.replace(weight=weight, enabled=enabled, bias=bias,
                     response=torch.where(ntake, b.response.gather(1, nidx), a.response),
                     act=torch.where(ntake, b.act.gather(1, nidx), a.act))


def adjusted_fitness(fitness: torch.Tensor, member: torch.Tensor, alive: torch.Tensor, how: str) -> torch.Tensor:
    """(S,) what offspring are shared out by. canonical (the paper's explicit fitness sharing):
    the sum of f_i / |species| over the species, i.e. its mean fitness, with fitness shifted to
    be >= 0 when some is negative. normalized (neat-python 2.0): the species' mean fitness,
    min-max scaled over the members of the surviving species (range at least 1)."""
    S = len(alive)
    sizes = torch.bincount(member, minlength=S).clamp(min=1)
    in_alive = alive[member]
    if how == "canonical":
        low = float(fitness[in_alive].min()) if bool(in_alive.any()) else 0.0
        shifted = fitness - min(0.0, low)
        mean = torch.zeros(S, dtype=fitness.dtype).index_add(0, member, shifted) / sizes
    else:
        lo, hi = float(fitness[in_alive].min()), float(fitness[in_alive].max())
        mean = torch.zeros(S, dtype=fitness.dtype).index_add(0, member, fitness) / sizes
        mean = (mean - lo) / max(1.0, hi - lo)
    return torch.where(alive, mean, 0.0)
