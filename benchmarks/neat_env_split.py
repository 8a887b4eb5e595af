"""How much of a NEAT env generation is gymnasium's step: NEAT on LunarLander-v3.

    python3 benchmarks/neat_env_split.py [GENERATIONS]      # default 4

Runs the package's lunarlander.ini (pop 150, 3 episodes a genome, seed 0) and prints the
process CPU time of the whole generations, of the env copies' `step` calls alone, the env
steps made, and the microseconds per env step. The rest is NEAT itself and the batched
forward passes.
"""
from __future__ import annotations

import sys
import time

import torch

from neuroplastic.evolve import NEAT, load_config
from neuroplastic.evolve.neat import envs
from neuroplastic.experiments.neat import CONFIGS


def main(generations: int = 4) -> None:
    torch.set_num_threads(1)
    spent = {"step_s": 0.0, "steps": 0}
    step = envs.RunningEnvs.step

    def counted(self, action, running):
        started = time.process_time()
        out = step(self, action, running)
        spent["step_s"] += time.process_time() - started
        spent["steps"] += int(running.sum())
        return out

    envs.RunningEnvs.step = counted
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
    total = time.process_time() - started
    print(f"{generations} generations: {total:.1f} s CPU, env step {spent['step_s']:.1f} s "
          f"({100 * spent['step_s'] / total:.0f}%), {spent['steps']:,} env steps, "
          f"{1e6 * spent['step_s'] / spent['steps']:.0f} µs per env step")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
