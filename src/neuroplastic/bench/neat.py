"""Whole NEAT generations per second (evaluate + speciate + reproduce), ours vs neat-python 2.0.

Both run the same INI file (the package's XOR config, neat-python's example; for CartPole-v1,
configs/cartpole.ini) at the same population size with `no_fitness_termination = True`, so
neither stops early, and both start from generation 0 and are timed over the same generations:
rounds of `per_round` generations of ours and then of neat-python's, interleaved, so both see
the same machine load. A row is the median seconds a generation over the rounds, as
generations per second. On a CPU device both sides are timed in process CPU time
(`time.process_time`): on a shared, loaded machine wall time counts the other jobs' bursts
as well, and the ratio then says more about the load than about the code. On CUDA it is wall
time, since the GPU's work is not the process's CPU time. Without neat-python installed, the
reference column is empty (None) and the ratio too.
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
CARTPOLE_INI = str(CONFIGS / "cartpole.ini")
CARTPOLE_STEPS = 500  # CartPole-v1's own limit


class _Task:
    """A benchmark task: its INI file and both sides' fitness (XOR, or CartPole-v1 with one
    episode per genome and generation, ours through gymnasium's numpy-vectorised CartPole)."""

    def __init__(self, name: str):
        self.name = name
        self.ini = XOR_INI if name == "xor" else CARTPOLE_INI

    def ours(self):
        if self.name == "xor":
            return parity_fitness(2), None
        from ..evolve.neat.envs import EnvFitness
        env = EnvFitness("CartPole-v1", episodes=1, max_steps=CARTPOLE_STEPS, seed=0, vectorization="vector")
        return env, env.close

    def reference(self):
        if self.name == "xor":
            return parity_eval(2), None
        from ..experiments.neat_reference import env_eval
        evaluate, _, _, env = env_eval("CartPole-v1", 0, 1, CARTPOLE_STEPS)
        return evaluate, env.close


def _clock(device: str):
    """Process CPU time on a CPU device (steady under other jobs' load), wall time on CUDA."""
    return time.perf_counter if device.startswith("cuda") else time.process_time


def _ours(task: _Task, pop_size: int, device: str):
    cfg = load_config(task.ini).replace(pop_size=pop_size, no_fitness_termination=True)
    neat = NEAT(cfg, seed=0)
    fitness, close = task.ours()
    clock = _clock(device)

    def generations(n: int) -> float:
        started = clock()
        for _ in range(n):
            neat.step(fitness)
        return (clock() - started) / n

    return generations, neat, close


def _reference(task: _Task, pop_size: int, device: str):
    import neat
    random.seed(0)
    config = load(task.ini, pop_size=pop_size, no_fitness_termination=True)
    pop = neat.Population(config)
    evaluate, close = task.reference()
    clock = _clock(device)

    def generations(n: int) -> float:
        started = clock()
        with contextlib.redirect_stdout(io.StringIO()):
            pop.run(evaluate, n)
        return (clock() - started) / n

    return generations, close


def bench_neat(quick: bool = False, device: str = "cpu") -> list[dict]:
    """NEAT generations per second (XOR and CartPole-v1, each at pop 150 / 1,000 / 10,000) vs
    neat-python 2.0 on the same config and task."""
    with one_thread(device):  # neat-python is single-threaded
        return _rows(quick, device)


def _rows(quick: bool, device: str) -> list[dict]:
    rows = []
    have_reference = available()
    cases = [("xor", 150), ("xor", 1_000), ("cartpole", 150)] if quick else \
        [("xor", 150), ("xor", 1_000), ("xor", 10_000), ("cartpole", 150), ("cartpole", 1_000), ("cartpole", 10_000)]
    for name, P in cases:
        task = _Task(name)
        rounds, per_round = (3, 2) if quick or P >= 10_000 else (5, 5)
        if P >= 10_000 or name == "cartpole":
            per_round = 1 if P >= 10_000 else 2
        ours, ours_state, close_ours = _ours(task, P, device)
        reference, close_ref = _reference(task, P, device) if have_reference else (None, None)
        ours(1)  # warm-up: the first generation builds plans and grows capacity
        if reference:
            reference(1)
        t_ours, t_ref = [], []
        for _ in range(rounds):  # interleaved
            t_ours.append(ours(per_round))
            if reference:
                t_ref.append(reference(per_round))
        for close in (close_ours, close_ref):
            if close is not None:
                close()
        ours_rate = 1 / statistics.median(t_ours)
        ref_rate = 1 / statistics.median(t_ref) if t_ref else None
        gens = 1 + rounds * per_round
        what = "XOR, pop {P:,}, neat-python's example config" if name == "xor" else \
            ("CartPole-v1, pop {P:,}, configs/cartpole.ini, 1 episode of <= 500 steps a genome (ours: one "
             "gymnasium CartPoleVectorEnv of P copies, numpy-vectorised; neat-python: one genome and step at a time)")
        rows.append({"case": f"{what.format(P=P)}: whole generations (evaluate + speciate + reproduce), "
                             f"generations 1-{gens} of seed 0, {device}, 1 thread, "
                             f"{'wall' if device.startswith('cuda') else 'process CPU'} time; "
                             f"{len(ours_state.species)} species at the end; reference: neat-python "
                             f"{version() or 'not installed'}",
                     "ours": round(ours_rate, 2), "reference": None if ref_rate is None else round(ref_rate, 2),
                     "unit": "generations/s", "ratio": None if ref_rate is None else round(ours_rate / ref_rate, 2)})
    return rows
