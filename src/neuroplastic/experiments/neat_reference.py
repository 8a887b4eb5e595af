"""neat-python (the comparison baseline) on the same config file and task, when it is installed.

`pip install 'neuroplastic[neat]'` brings it; without it `available()` is False and callers
leave the comparison out. The same INI file is read by both implementations (neat-python
ignores the [Neuroplastic] section), the fitness is the same formula, and every genome is
evaluated one by one as neat-python's examples do.
"""
from __future__ import annotations

import os
import random
import time

import numpy as np


def available() -> bool:
    try:
        import neat  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str | None:
    try:
        from importlib.metadata import version as v
        return v("neat-python")
    except Exception:
        return None


def load(config_path: str, **overrides):
    """A neat.Config from the INI file, with [NEAT] values such as pop_size overridden."""
    import configparser
    import tempfile

    import neat
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config_path)
    for key, value in overrides.items():
        parser["NEAT"][key] = str(value)
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as f:
        parser.write(f)
        path = f.name
    try:
        config = neat.Config(neat.DefaultGenome, neat.DefaultReproduction, neat.DefaultSpeciesSet,
                             neat.DefaultStagnation, path)
    finally:
        os.unlink(path)
    # the bare `full`, `fs_neat` and `partial` mean their no-direct / no-hidden forms in
    # neat-python (and in ours); naming that form keeps it from printing a warning per new genome
    genome = config.genome_config
    genome.initial_connection = EXPLICIT_INITIAL.get(genome.initial_connection, genome.initial_connection)
    return config


EXPLICIT_INITIAL = {"full": "full_nodirect", "fs_neat": "fs_neat_nohidden", "partial": "partial_nodirect"}


def parity_eval(bits: int):
    import itertools

    import neat
    inputs = [tuple(float(b) for b in x) for x in itertools.product((0, 1), repeat=bits)]
    targets = [float(sum(x) % 2) for x in inputs]

    def eval_genomes(genomes, config):
        for _, genome in genomes:
            net = neat.nn.FeedForwardNetwork.create(genome, config)
            genome.fitness = len(inputs) - sum((net.activate(x)[0] - t) ** 2 for x, t in zip(inputs, targets))

    return eval_genomes


def run_parity(config_path: str, bits: int, seed: int, generations: int, **overrides) -> dict:
    """One neat-python run: solved, generations, evaluations, sizes of the best genome, wall time."""
    import neat
    random.seed(seed)
    np.random.seed(seed)
    config = load(config_path, **overrides)
    pop = neat.Population(config)
    evals = parity_eval(bits)
    counted = {"n": 0, "gens": 0}

    def counting(genomes, cfg):
        counted["n"] += len(genomes)
        counted["gens"] += 1
        evals(genomes, cfg)

    started = time.perf_counter()
    try:
        best = pop.run(counting, generations)
    except neat.CompleteExtinctionException:
        best = pop.best_genome
    except Exception as exc:  # neat-python's own refusals (RuntimeError, AssertionError, ...) mid-run
        raise _failed(counted["gens"], exc) from None
    wall = time.perf_counter() - started
    solved = best is not None and best.fitness >= config.fitness_threshold
    hidden = len([k for k in best.nodes if k not in config.genome_config.output_keys]) if best else 0
    edges = sum(1 for c in best.connections.values() if c.enabled) if best else 0
    return {"solved": bool(solved), "generations": counted["gens"] - 1 if solved else counted["gens"],
            "evaluations": counted["n"], "n_hidden": hidden, "n_edges": edges, "wall_s": wall,
            "best_fitness": float(best.fitness) if best else float("nan")}


def _extinct(generation: int):
    """neat-python's CompleteExtinctionException as ours (one line, exit 2 on the CLI)."""
    from ..evolve.neat.neat import CompleteExtinctionError
    return CompleteExtinctionError(f"neat-python: every species stagnated in generation {generation - 1} "
                                   "(set reset_on_extinction = True to start a new population)")


def _failed(generation: int, exc: Exception):
    """neat-python stopping mid-run on a setting it cannot satisfy (such as more species than
    pop_size / min_species_size allows) as one line, not its traceback. `generation` counts the
    generations evaluated so far; reproduction after the last of them is what failed."""
    from ..errors import ConfigError
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return ConfigError(f"neat-python failed after generation {max(generation - 1, 0)}: {reason} "
                       "(set reference=false to run ours only)")


def env_eval(env_id: str, seed: int, episodes: int, max_steps: int):
    """neat-python's eval_genomes for a gymnasium env: each genome plays the generation's
    episodes (the same reset seeds as ours: seed + generation * episodes + b), one genome and
    one step at a time (neat-python's examples' way), actions by argmax. Returns
    (eval_genomes, episode_return(net, reset_seed), state, env)."""
    import gymnasium as gym
    import neat
    env = gym.make(env_id)
    first_action = int(getattr(env.action_space, "start", 0))  # Discrete(n, start=k), as EnvFitness reads it
    state = {"generation": 0, "n": 0}

    def episode_return(net, reset_seed: int) -> float:
        obs, _ = env.reset(seed=reset_seed)
        total = 0.0
        for _ in range(max_steps):
            action = first_action + int(np.argmax(net.activate(obs)))
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return total

    def eval_genomes(genomes, cfg):
        first = seed + state["generation"] * episodes
        for _, genome in genomes:
            net = neat.nn.FeedForwardNetwork.create(genome, cfg)
            genome.fitness = float(np.mean([episode_return(net, first + b) for b in range(episodes)]))
        state["generation"] += 1
        state["n"] += len(genomes)

    return eval_genomes, episode_return, state, env


def run_env(config_path: str, env_id: str, seed: int, generations: int, episodes: int, max_steps: int,
            eval_episodes: int, validate_episodes: int = 0, validate_threshold: float = 0.0, **overrides) -> dict:
    """One neat-python run on a gymnasium env (see env_eval), then its best genome on
    `eval_episodes` held-out episodes. With `validate_episodes`, a generation whose
    fitness_criterion meets the threshold ends the run only when its best genome also averages
    `validate_threshold` over that many validation episodes, as ours. wall_s leaves the
    validation episodes out (validation_s), as ours does."""
    import neat

    from ..evolve.neat.envs import HELD_OUT_SEED, VALIDATION_SEED
    random.seed(seed)
    np.random.seed(seed)
    if validate_episodes:
        overrides["no_fitness_termination"] = True
    config = load(config_path, **overrides)
    eval_genomes, episode_return, state, env = env_eval(env_id, seed, episodes, max_steps)
    pop = neat.Population(config)
    criterion = {"max": max, "min": min, "mean": np.mean}[config.fitness_criterion]
    validated = []  # (validation mean, genome) of every generation's best whose criterion met the threshold
    generation = {}
    validation_s = 0.0

    def eval_and_keep(genomes, cfg):
        eval_genomes(genomes, cfg)
        generation["best"] = max((g for _, g in genomes), key=lambda g: g.fitness)
        generation["criterion"] = float(criterion([g.fitness for _, g in genomes]))

    started = time.perf_counter()
    try:
        if not validate_episodes:
            pop.run(eval_and_keep, generations)
        else:
            for _ in range(generations):  # one generation a call, to validate between them
                pop.run(eval_and_keep, 1)
                if generation["criterion"] >= config.fitness_threshold:
                    validating = time.perf_counter()
                    net = neat.nn.FeedForwardNetwork.create(generation["best"], config)
                    mean = float(np.mean([episode_return(net, VALIDATION_SEED + b)
                                          for b in range(validate_episodes)]))
                    validated.append((mean, generation["best"]))
                    validation_s += time.perf_counter() - validating
                    if mean >= validate_threshold:
                        break
    except neat.CompleteExtinctionException:
        env.close()
        raise _extinct(state["generation"]) from None
    except Exception as exc:
        env.close()
        raise _failed(state["generation"], exc) from None
    wall = time.perf_counter() - started - validation_s
    if validate_episodes:
        from .neat import pick_validated
        solved, chosen = pick_validated(validated, validate_threshold)
        best = chosen[1] if chosen is not None else pop.best_genome
    else:  # neat-python stopped in the generation whose criterion met the threshold, or ran out
        solved, best = generation["criterion"] >= config.fitness_threshold, pop.best_genome
    net = neat.nn.FeedForwardNetwork.create(best, config)
    returns = [episode_return(net, HELD_OUT_SEED + b) for b in range(eval_episodes)]
    env.close()
    out = {"solved": bool(solved), "generations": state["generation"] - 1 if solved else state["generation"],
           "evaluations": state["n"], "best_fitness": float(pop.best_genome.fitness),
           "n_hidden": len([k for k in best.nodes if k not in config.genome_config.output_keys]),
           "n_edges": sum(1 for c in best.connections.values() if c.enabled), "wall_s": wall,
           "return_mean": float(np.mean(returns)), "return_std": float(np.std(returns))}
    if validate_episodes:
        out.update(validations=len(validated), validation_episodes=len(validated) * validate_episodes,
                   validation_return=next((m for m, g in validated if g is best), None), validation_s=validation_s)
    return out
