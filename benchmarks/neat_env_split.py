"""How much of a NEAT env generation is gymnasium's step.

    python3 benchmarks/neat_env_split.py [GENERATIONS]             # LunarLander-v3, default 4
    python3 benchmarks/neat_env_split.py cartpole [GENERATIONS]    # bench neat's CartPole at pop 1,000

LunarLander: the package's lunarlander.ini (pop 150, 3 episodes a genome, seed 0), the env
copies stepped by `RunningEnvs`. cartpole: `bench neat`'s CartPole-v1 case at pop 1,000
(configs/cartpole.ini, one episode a genome, gymnasium's numpy CartPoleVectorEnv), over
generations 2 onwards. Prints the process CPU time of the whole generations, of the env's
`step` calls alone, the env steps made, and the microseconds per step call. The rest is NEAT
itself and the batched forward passes; for CartPole also the ratio to neat-python that a
free NEAT and forward would reach, given neat-python's rate in docs/results/bench/neat.json.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from neuroplastic.evolve import NEAT, load_config
from neuroplastic.evolve.neat import envs
from neuroplastic.experiments.neat import CONFIGS

BENCH_JSON = Path(__file__).resolve().parent.parent / "docs" / "results" / "bench" / "neat.json"


def timed_step(step, spent: dict, count):
    def wrapper(*args, **kwargs):
        started = time.process_time()
        out = step(*args, **kwargs)
        spent["step_s"] += time.process_time() - started
        spent["steps"] += count(*args)
        return out
    return wrapper


def lunarlander(generations: int) -> None:
    spent = {"step_s": 0.0, "steps": 0}
    step = envs.RunningEnvs.step
    envs.RunningEnvs.step = timed_step(step, spent, lambda self, action, running: int(running.sum()))
    cfg = load_config(str(CONFIGS / "lunarlander.ini")).replace(no_fitness_termination=True)
    neat = NEAT(cfg, seed=0)
    fitness = envs.EnvFitness("LunarLander-v3", episodes=3, seed=0)
    started = time.process_time()
    try:
        for _ in range(generations):
            neat.step(fitness)
    finally:
        fitness.close()
        envs.RunningEnvs.step = step
    report(generations, time.process_time() - started, spent, "Box2D step")


def cartpole(generations: int, pop: int = 1_000) -> None:
    from neuroplastic.bench.neat import CARTPOLE_INI, CARTPOLE_STEPS
    spent = {"step_s": 0.0, "steps": 0}
    cfg = load_config(CARTPOLE_INI).replace(pop_size=pop, no_fitness_termination=True)
    neat = NEAT(cfg, seed=0)
    fitness = envs.EnvFitness("CartPole-v1", episodes=1, max_steps=CARTPOLE_STEPS, seed=0, vectorization="vector")
    try:
        neat.step(fitness)  # the first generation pays for warm-up and makes the vector env
        fitness._env.step = timed_step(fitness._env.step, spent, lambda action: 1)
        started = time.process_time()
        for _ in range(generations):
            neat.step(fitness)
    finally:
        fitness.close()
    total = time.process_time() - started
    report(generations, total, spent, f"step of the {pop:,} copies")
    rows = json.loads(BENCH_JSON.read_text())["rows"]
    reference = next(r["reference"] for r in rows if r["case"].startswith(f"CartPole-v1, pop {pop:,},"))
    env_ms, ours_ms = 1e3 * spent["step_s"] / generations, 1e3 * total / generations
    print(f"per generation: {ours_ms:.0f} ms, of it the env {env_ms:.0f} ms; neat-python "
          f"{1e3 / reference:.0f} ms ({BENCH_JSON.name}): ratio {1e3 / reference / ours_ms:.1f}x now, at most "
          f"{1e3 / reference / env_ms:.1f}x with the env's step alone")


def report(generations: int, total: float, spent: dict, what: str) -> None:
    print(f"{generations} generations: {total:.1f} s CPU, env step {spent['step_s']:.1f} s "
          f"({100 * spent['step_s'] / total:.0f}%), {spent['steps']:,} step calls, "
          f"{1e6 * spent['step_s'] / spent['steps']:.0f} µs per {what}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    args = sys.argv[1:]
    if args[:1] == ["cartpole"]:
        cartpole(*(int(a) for a in args[1:2]))
    else:
        lunarlander(*(int(a) for a in args[:1]))
