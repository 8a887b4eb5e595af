"""Where a NEAT generation's time goes, phase by phase.

    python3 benchmarks/neat_phases.py [POP] [REPEATS]     # XOR, bench neat's config

Runs XOR (neat-python's example config, seed 0) at POP (default 1,000) for 26 generations,
REPEATS times (default 5; every repeat does the same work, the run being seeded), and prints
each phase's time per generation over generations 2-26 (the fastest repeat of each phase,
which is steady on a shared machine; one thread, wall time), then the torch calls each phase
makes per generation (one profiled repeat), and what one call of the kernels mutation is made
of costs on a (POP, 17) block, the gene tensor's shape here. The phases: phenotypes (genomes -> GraphBatch),
fitness (its forward, with the execution plan), then reproduction's plan (parents),
crossover, mutate and speciate.
"""
from __future__ import annotations

import sys
import time
from collections import Counter

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from neuroplastic.bench.neat import XOR_INI
from neuroplastic.evolve import NEAT, load_config
from neuroplastic.evolve.neat import neat as neat_module
from neuroplastic.evolve.neat import species
from neuroplastic.evolve.neat.tasks import parity_fitness

GENERATIONS = 26  # the first is left out: it pays for warm-up
ORDER = ["phenotypes", "fitness", "plan", "crossover", "mutate", "speciate"]
# (owner, attribute, phase): each is wrapped by a timer for the run (neat.py's own names for
# the reproduction steps, as it calls them)
TIMED = [(NEAT, "phenotypes", "phenotypes"), (neat_module, "plan_offspring", "plan"),
         (neat_module, "crossover", "crossover"), (neat_module, "mutate", "mutate"),
         (species.SpeciesSet, "speciate", "speciate")]


def one_run(pop: int, clock: Counter) -> None:
    cfg = load_config(XOR_INI).replace(pop_size=pop, no_fitness_termination=True)
    neat, fitness = NEAT(cfg, seed=0), parity_fitness(2)
    timed_fitness = timed("fitness", fitness, clock)
    for generation in range(GENERATIONS):
        if generation == 1:
            clock.clear()
        neat.step(timed_fitness)


def timed(name: str, fn, clock: Counter):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        with record_function(name):
            out = fn(*args, **kwargs)
        clock[name] += time.perf_counter() - started
        return out
    return wrapper


def kernel_costs(pop: int, genes: int = 17) -> dict[str, float]:
    """Microseconds (best of 5 x 200 calls) of the kernels mutation is made of, on a (pop,
    genes) block like a population's gene tensor."""
    import timeit
    rng = torch.Generator().manual_seed(0)
    w, v = torch.randn(pop, genes), torch.randn(pop, genes)
    mask = w > 0
    kernels = {"add": lambda: w + v, "compare": lambda: w < 0.3, "where": lambda: torch.where(mask, w, v),
               "gather": lambda: w.gather(1, mask.long()), "rand": lambda: torch.rand(pop, genes, generator=rng),
               "randn": lambda: torch.randn(pop, genes, generator=rng)}
    return {name: 1e6 * min(timeit.repeat(fn, number=200, repeat=5)) / 200 for name, fn in kernels.items()}


def main(pop: int = 1000, repeats: int = 5) -> None:
    torch.set_num_threads(1)
    clock: Counter = Counter()
    originals = [getattr(owner, attr) for owner, attr, _ in TIMED]
    for (owner, attr, name), fn in zip(TIMED, originals):
        setattr(owner, attr, timed(name, fn, clock))
    try:
        best: dict[str, float] = {}
        for _ in range(repeats):
            one_run(pop, clock)
            for name in ORDER:
                best[name] = min(best.get(name, clock[name]), clock[name])
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            one_run(pop, Counter())
    finally:
        for (owner, attr, _), fn in zip(TIMED, originals):
            setattr(owner, attr, fn)
    calls: Counter = Counter()
    for event in prof.events():
        parent = event.cpu_parent
        if event.name.startswith("aten::") and parent is not None and not parent.name.startswith("aten::"):
            while parent is not None and parent.name not in ORDER:
                parent = parent.cpu_parent
            calls[parent.name if parent is not None else "other"] += 1
    n = GENERATIONS  # the profiled run's calls include generation 1; per generation over all
    print(f"XOR, pop {pop:,}, generations 2-{GENERATIONS} of seed 0, best of {repeats} runs "
          "(ms per generation; torch calls per generation):")
    for name in ORDER:
        print(f"  {name:10s} {1000 * best[name] / (GENERATIONS - 1):6.2f}  {calls[name] / n:6.0f}")
    print(f"  {'sum':10s} {1000 * sum(best.values()) / (GENERATIONS - 1):6.2f}  "
          f"{sum(calls[k] for k in ORDER) / n:6.0f}")
    costs = kernel_costs(pop)
    print(f"one call on a ({pop:,}, 17) block, µs: " + ", ".join(f"{k} {v:.1f}" for k, v in costs.items()))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
