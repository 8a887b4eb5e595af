"""Species: assignment by compatibility distance, stagnation, and offspring counts.

Species are kept in an ordered list (creation order). A genome joins the first species whose
representative is within the threshold (the paper; `species_assignment = closest` takes the
closest one, as neat-python does); genomes that fit none found new species, one at a time in
a random order, each taking every remaining genome within the threshold of its founder. The
loop is over new species (few), never over genomes.
"""
from __future__ import annotations

import math

import torch

from .distance import GenePool, pool_distances
from .genome import Genomes

FOUNDER_BATCH = 32  # candidate founders whose distances are computed together


class SpeciesSet:
    def __init__(self):
        self.ids = torch.zeros(0, dtype=torch.long)            # (S,) species ids
        self.created = torch.zeros(0, dtype=torch.long)        # generation each was founded
        self.best = torch.zeros(0)                              # best species fitness so far
        self.last_improved = torch.zeros(0, dtype=torch.long)
        self.reps: Genomes | None = None                        # (S rows) representatives
        self.member = torch.zeros(0, dtype=torch.long)         # (P,) index into the arrays above
        self.next_id = 0

    def __len__(self) -> int:
        return len(self.ids)

    def sizes(self) -> torch.Tensor:
        return torch.bincount(self.member, minlength=len(self))

    # ----------------------------------------------------------------- assignment
    def speciate(self, genomes: Genomes, cfg, generation: int, n_innovations: int, rng: torch.Generator) -> None:
        """Assign every genome of the new population (canonical rows, as a population's always
        are); species left empty are dropped."""
        P = len(genomes)
        thr = cfg.compatibility_threshold
        coef = (cfg.excess_coefficient, cfg.compatibility_disjoint_coefficient,
                cfg.compatibility_weight_coefficient, cfg.compatibility_small_genome)
        member = torch.full((P,), -1, dtype=torch.long)
        pool = GenePool(genomes.innov, genomes.weight, canonical=True)  # shared by every distance below
        if len(self):
            d = pool_distances(pool, self.reps.innov, self.reps.weight, n_innovations, *coef)
            if cfg.species_representative == "closest":
                # neat-python: the new representative is the genome closest to the old one
                self.reps = genomes.take(d.argmin(0))
                d = pool_distances(pool, self.reps.innov, self.reps.weight, n_innovations, *coef)
            within = d < thr
            if cfg.species_assignment == "first":
                choice = within.to(torch.int8).argmax(1)
            else:
                choice = torch.where(within, d, math.inf).argmin(1)
            member = torch.where(within.any(1), choice, member)
        order = torch.randperm(P, generator=rng)
        new_reps = []
        rest = order[member[order] < 0]
        while len(rest):
            # Founders in the random order: the first unassigned genome founds a species and takes
            # every unassigned genome within the threshold. Distances to the next FOUNDER_BATCH
            # candidates are computed at once, then founders are taken from them in order.
            batch = rest[:FOUNDER_BATCH]
            candidates = pool.rows(rest)  # the batch is its first rows
            d = pool_distances(candidates, candidates.innov[:len(batch)], candidates.weight[:len(batch)],
                               n_innovations, *coef) < thr
            free = torch.ones(len(rest), dtype=torch.bool)
            for col in range(len(batch)):
                if not bool(free[col]):
                    continue
                k = len(self) + len(new_reps)
                joins = free & d[:, col]
                joins[col] = True
                member[rest[joins]] = k
                free &= ~joins
                new_reps.append(batch[col:col + 1])
            rest = rest[free]
        k = len(new_reps)
        if k:
            founders = torch.cat(new_reps)
            self.ids = torch.cat([self.ids, torch.arange(self.next_id, self.next_id + k)])
            self.next_id += k
            self.created = torch.cat([self.created, torch.full((k,), generation, dtype=torch.long)])
            self.best = torch.cat([self.best, torch.full((k,), -math.inf)])
            self.last_improved = torch.cat([self.last_improved, torch.full((k,), generation, dtype=torch.long)])
            reps = genomes.take(founders)
            self.reps = reps if self.reps is None else Genomes.cat([self.reps, reps])
        self.member = member
        self._drop(self.sizes() > 0)

    def _drop(self, keep: torch.Tensor) -> None:
        if bool(keep.all()):
            return
        index = keep.nonzero().squeeze(1)
        remap = torch.full((len(keep),), -1, dtype=torch.long)
        remap[index] = torch.arange(len(index))
        self.ids, self.created = self.ids[index], self.created[index]
        self.best, self.last_improved = self.best[index], self.last_improved[index]
        self.reps = self.reps.take(index)
        self.member = remap[self.member]

    def choose_representatives(self, genomes: Genomes, rng: torch.Generator) -> None:
        """The paper: each species is represented by a random member of this generation."""
        P = len(genomes)
        key = self.member * P + torch.randperm(P, generator=rng)
        first = torch.zeros(len(self), dtype=torch.long).scatter_reduce(
            0, self.member, key, reduce="amin", include_self=False)
        self.reps = genomes.take(first % P)

    # ----------------------------------------------------------------- fitness
    def species_fitness(self, fitness: torch.Tensor, how: str) -> torch.Tensor:
        S = len(self)
        if how in ("max", "min"):
            return torch.full((S,), -math.inf if how == "max" else math.inf, dtype=fitness.dtype).scatter_reduce(
                0, self.member, fitness, reduce="amax" if how == "max" else "amin")
        if how == "mean":
            return torch.zeros(S, dtype=fitness.dtype).index_add(0, self.member, fitness) / self.sizes()
        # median: numpy's, over each species (a loop over species, not genomes)
        return torch.stack([fitness[self.member == s].median() for s in range(S)]) if S else fitness[:0]

    def stagnation(self, fitness: torch.Tensor, generation: int, cfg) -> torch.Tensor:
        """(S,) True for species that may not reproduce; updates each species' best."""
        sf = self.species_fitness(fitness, cfg.species_fitness_func)
        improved = sf > self.best
        self.best = torch.where(improved, sf, self.best)
        self.last_improved = torch.where(improved, generation, self.last_improved)
        stagnant = generation - self.last_improved >= cfg.max_stagnation
        if cfg.species_elitism:
            protected = sf.argsort(descending=True, stable=True)[:cfg.species_elitism]
            stagnant[protected] = False
        return stagnant

    def state(self) -> dict:
        return {"ids": self.ids, "created": self.created, "best": self.best, "last_improved": self.last_improved,
                "reps": None if self.reps is None else self.reps.state(), "member": self.member,
                "next_id": self.next_id}

    @staticmethod
    def from_state(state: dict) -> SpeciesSet:
        s = SpeciesSet()
        for key in ("ids", "created", "best", "last_improved", "member"):
            setattr(s, key, state[key].clone())
        s.reps = None if state["reps"] is None else Genomes.from_state(state["reps"])
        s.next_id = int(state["next_id"])
        return s


def spawn_counts(adjusted: torch.Tensor, previous: torch.Tensor, pop_size: int, min_size: int,
                 method: str) -> torch.Tensor:
    """Offspring per species summing to pop_size: proportional to `adjusted` (equal shares when
    all are 0), at least min_size each while that fits; `smoothed` moves each species halfway
    from its previous size to that target (neat-python 2.0's compute_spawn)."""
    S = len(adjusted)
    total = float(adjusted.sum())
    target = adjusted / total * pop_size if total > 0 else torch.full((S,), pop_size / S, dtype=adjusted.dtype)
    floor_size = min(min_size, pop_size // S)
    target = target.clamp(min=floor_size)
    if method == "smoothed":
        target = previous + (target - previous) * 0.5
        target = target.clamp(min=floor_size)
    target = target * (pop_size / float(target.sum()))
    counts = target.floor().long().clamp(min=floor_size)
    short = pop_size - int(counts.sum())
    remainder = target - target.floor()
    if short > 0:
        counts[remainder.argsort(descending=True, stable=True)[:short]] += 1
    while short < 0:  # the floors pushed it over: take from the largest species
        k = min(-short, S)
        counts[counts.argsort(descending=True, stable=True)[:k]] -= 1
        short += k
    return counts
