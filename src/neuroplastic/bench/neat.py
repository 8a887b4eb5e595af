"""Whole NEAT generations per second (evaluate + speciate + reproduce), ours vs neat-python 2.0.

Both run the same INI file (the package's XOR config, neat-python's example) at the same
population size with `no_fitness_termination = True`, so neither stops early, and both start
from generation 0 and are timed over the same generations: rounds of `per_round` generations
of ours and then of neat-python's, interleaved, so both see the same machine load. A row is
the median seconds a generation over the rounds, as generations per second. Without
neat-python installed, the reference column is empty (None) and the ratio too.
"""
from __future__ import annotations

import contextlib
import io
import random
import statistics
import time

from ..evolve import NEAT, load_config
from ..evolve.neat.tasks import parity_fitness
from ..experiments.neat import CONFIGS
from ..experiments.neat_reference import available, load, parity_eval, version
from .timing import one_thread

XOR_INI = str(CONFIGS / "xor.ini")


def _ours(pop_size: int, device: str):
    cfg = load_config(XOR_INI).replace(pop_size=pop_size, no_fitness_termination=True)
    neat = NEAT(cfg, seed=0)
    fitness = parity_fitness(2)

    def generations(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            neat.step(fitness)
        return (time.perf_counter() - started) / n

    return generations, neat


def _reference(pop_size: int):
    import neat
    random.seed(0)
    config = load(XOR_INI, pop_size=pop_size, no_fitness_termination=True)
    pop = neat.Population(config)
    evaluate = parity_eval(2)

    def generations(n: int) -> float:
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            pop.run(evaluate, n)
        return (time.perf_counter() - started) / n

    return generations, pop


def bench_neat(quick: bool = False, device: str = "cpu") -> list[dict]:
    """NEAT generations per second (XOR, pop 150 / 1,000 / 10,000) vs neat-python 2.0 on the same config."""
    with one_thread(device):  # neat-python is single-threaded
        return _rows(quick, device)


def _rows(quick: bool, device: str) -> list[dict]:
    rows = []
    have_reference = available()
    sizes = (150, 1_000) if quick else (150, 1_000, 10_000)
    for P in sizes:
        rounds, per_round = (3, 2) if quick or P >= 10_000 else (5, 5)
        if P >= 10_000:
            per_round = 1
        ours, ours_state = _ours(P, device)
        reference = _reference(P)[0] if have_reference else None
        ours(1)  # warm-up: the first generation builds plans and grows capacity
        if reference:
            reference(1)
        t_ours, t_ref = [], []
        for _ in range(rounds):  # interleaved
            t_ours.append(ours(per_round))
            if reference:
                t_ref.append(reference(per_round))
        ours_rate = 1 / statistics.median(t_ours)
        ref_rate = 1 / statistics.median(t_ref) if t_ref else None
        gens = 1 + rounds * per_round
        rows.append({"case": f"XOR, pop {P:,}, neat-python's example config: whole generations (evaluate + speciate "
                             f"+ reproduce), generations 1-{gens} of seed 0, {device}, 1 thread; "
                             f"{len(ours_state.species)} species at the end; reference: neat-python "
                             f"{version() or 'not installed'}",
                     "ours": round(ours_rate, 2), "reference": None if ref_rate is None else round(ref_rate, 2),
                     "unit": "generations/s", "ratio": None if ref_rate is None else round(ours_rate / ref_rate, 2)})
    return rows
