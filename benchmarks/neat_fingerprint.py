"""Every number a few seeded NEAT runs produce, to check that a speed-up changes none of them.

    python3 benchmarks/neat_fingerprint.py dump before.pt     # on the old code
    python3 benchmarks/neat_fingerprint.py dump after.pt      # on the new code
    python3 benchmarks/neat_fingerprint.py compare before.pt after.pt

A run's fingerprint is its history (wall times left out), its final population, species,
innovation table and generator state, and the best network's outputs on a fixed input.
`compare` asks for exact equality (torch.equal, ==), nothing approximate.
"""
from __future__ import annotations

import sys
import time

import torch

from neuroplastic.evolve import NEAT, load_config
from neuroplastic.evolve.neat.tasks import parity_fitness
from neuroplastic.experiments.neat import CONFIGS

# (name, ini, pop, seed, generations, fitness)
RUNS = [(f"xor-150-s{s}", "xor.ini", 150, s, 60, ("parity", 2)) for s in range(3)] + [
    ("xor-1000-s0", "xor.ini", 1000, 0, 30, ("parity", 2)),
    ("xor-paper-150-s0", "xor-paper.ini", 150, 0, 60, ("parity", 2)),
    ("parity3-150-s0", "parity3.ini", 150, 0, 40, ("parity", 3)),
    ("cartpole-sync-50-s0", "cartpole.ini", 50, 0, 5, ("env", "sync", 2, 100)),
    ("cartpole-vector-200-s1", "cartpole.ini", 200, 1, 4, ("env", "vector", 1, 200)),
]


def _fitness(spec, seed):
    if spec[0] == "parity":
        return parity_fitness(spec[1]), None
    from neuroplastic.evolve.neat.envs import EnvFitness
    env = EnvFitness("CartPole-v1", episodes=spec[2], max_steps=spec[3], seed=seed, vectorization=spec[1])
    return env, env.close


def fingerprint(name, ini, pop, seed, generations, spec) -> dict:
    cfg = load_config(str(CONFIGS / ini)).replace(pop_size=pop, no_fitness_termination=True)
    neat = NEAT(cfg, seed=seed)
    fitness, close = _fitness(spec, seed)
    started = time.perf_counter()
    try:
        for _ in range(generations):
            neat.step(fitness)
    finally:
        if close is not None:
            close()
    seconds = time.perf_counter() - started
    state = neat.state_dict()
    del state["config"]  # the settings, not a result (new keys with defaults must not count)
    state["history"] = [{k: v for k, v in row.items() if k != "wall_s"} for row in state["history"]]
    net = neat.best_net()
    x = torch.linspace(-1, 1, 8 * cfg.num_inputs).reshape(8, cfg.num_inputs)
    with torch.no_grad():
        state["best_outputs"] = net(x)
    print(f"{name}: {1000 * seconds / generations:.2f} ms/generation", flush=True)
    return state


def _diff(a, b, path: str, out: list) -> None:
    if torch.is_tensor(a) or torch.is_tensor(b):
        if not (torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape
                and torch.equal(a, b)):
            out.append(path)
    elif isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{path}.{k} (missing)")
            else:
                _diff(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            out.append(f"{path} (length {len(a)} vs {len(b)})")
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path}[{i}]", out)
    elif not (a == b or (a != a and b != b)):  # NaN == NaN here
        out.append(f"{path} ({a!r} vs {b!r})")


def main(argv) -> int:
    if argv[:1] == ["dump"] and len(argv) == 2:
        only = None
    elif argv[:1] == ["dump"] and len(argv) == 3:
        only = argv[2]
    elif argv[:1] == ["compare"] and len(argv) == 3:
        a, b = torch.load(argv[1], weights_only=True), torch.load(argv[2], weights_only=True)
        bad = []
        _diff(a, b, "", bad)
        print("identical" if not bad else "DIFFERENT:\n  " + "\n  ".join(bad[:40]))
        return 1 if bad else 0
    else:
        print(__doc__)
        return 2
    torch.set_num_threads(1)
    runs = {r[0]: fingerprint(*r) for r in RUNS if only is None or r[0] == only}
    torch.save(runs, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
