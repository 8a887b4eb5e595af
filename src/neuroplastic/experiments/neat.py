"""NEAT experiments (Stanley & Miikkulainen 2002), ours beside neat-python on the same config.

  neat-xor       XOR, neat-python's example config (pop 150, threshold 3.9, <= 300 generations)
  neat-parity    3-bit parity, the same config with 3 inputs (fitness 8 - sum of squared errors)
  neat-cartpole  CartPole-v1, every genome on the same episodes (a smoke test: mean return >= 475)
  neat-lunarlander  LunarLander-v3 (the goal: >= 200 over 100 held-out episodes)

Method, top to bottom:
  1. Read the INI file (`config`, default the package's configs/<task>.ini); `pop_size` and
     `generations` may override it.
  2. Every seed runs `neuroplastic.evolve.NEAT(config, seed).run(fitness, generations)`, which
     stops at the config's fitness threshold; the row keeps solved, generations (the index of
     the generation that met the threshold, else the budget), evaluations, the best genome's
     hidden nodes and enabled connections, wall time and the per-generation history.
  3. With neat-python installed (`pip install 'neuroplastic[neat]'`) and `reference = true`,
     the same file and fitness run in neat-python 2.0 as variant "neat-python".
  4. An environment's best genome is also scored on 100 held-out episodes (reset seeds 10000+).
     With `validate_episodes` > 0 a generation meeting the threshold does not end the run by
     itself: its best genome first plays `validate_episodes` validation episodes (reset seeds
     5000+, neither training nor held-out ones), and the run stops only when that mean reaches
     `validate_threshold`. The threshold is a maximum over a population of noisy few-episode
     means, so the genome that first crosses it is mostly a lucky one (LunarLander: 250 in
     training, 134 held-out). The exported genome is the one that passed, else the best
     validated one, else the fittest. neat-python's row is stopped by the same rule.
  5. neat-xor with `fitness = paper` scores the 2002 paper's way instead: fitness
     (4 - sum |error|)**2, and a run is solved in the first generation where a genome has every
     output on the right side of 0.5 (the config's threshold is not used; no neat-python row).
     The winner (the fittest genome that passes) gives the hidden nodes and connections.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

from ..core.validate import check_bool, check_int, check_number
from ..errors import ConfigError
from . import register
from .options import check_seed_ranges

CONFIGS = Path(__file__).resolve().parent.parent / "evolve" / "configs"

COMMON = {"seeds": 50, "generations": 300, "pop_size": 0, "reference": True, "config": ""}
OPTION_NOTES = {
    "config": "a neat-python INI file; '' = the package's configs/<task>.ini",
    "pop_size": "0: the config file's pop_size",
    "generations": "the budget; a run stops earlier at the config's fitness_threshold",
    "reference": "also run neat-python 2.0 on the same file (when it is installed)",
    "episodes": "episodes per genome and generation (the same ones for every genome)",
    "max_steps": "steps per episode",
    "eval_episodes": "held-out episodes for the best genome",
    "validate_episodes": "0: stop at the config's threshold; else a genome meeting it must also average "
                         "validate_threshold over this many validation episodes",
    "validate_threshold": "the mean return over the validation episodes that ends a run",
    "fitness": "neat-python: 4 - sum of squared errors, solved at the config's fitness_threshold; "
               "paper: (4 - sum |error|)**2, solved when every output is on the right side of 0.5",
}
FITNESSES = ("neat-python", "paper")


def _bits(task: str) -> int:
    """Input bits of a boolean task ('xor' = 2-bit parity, 'parity3'), 0 for an environment."""
    return 2 if task == "xor" else int(task[len("parity"):]) if task.startswith("parity") else 0


class NEATExperiment:
    inputs = None  # neither --envs nor --data: the task is fixed by the experiment
    # folders written before validation existed were stopped at the threshold alone
    settings_before = {"validate_episodes": 0, "validate_threshold": None}

    def __init__(self, name: str, description: str, task: str, default_ini: str, defaults: dict,
                 quick: dict, full: dict | None = None):
        self.name, self.description, self.task = name, description, task
        self.default_ini = default_ini
        self.defaults = {**COMMON, **defaults}
        self.quick, self.full = quick, full or {}

    def config(self, quick: bool, full: bool, overrides: dict) -> dict:
        config = {**self.defaults, **(self.quick if quick else self.full if full else {})}
        for key, value in overrides.items():
            if key not in config:
                raise ConfigError(f"unknown {self.name} option {key!r}; known: {', '.join(sorted(config))}")
            config[key] = value
        for key, minimum in (("seeds", 1), ("generations", 1), ("pop_size", 0)):
            config[key] = check_int(config[key], key, minimum)
        for key in ("episodes", "max_steps", "eval_episodes"):
            if key in config:
                config[key] = check_int(config[key], key, 1)
        if "validate_episodes" in config:
            config["validate_episodes"] = check_int(config["validate_episodes"], "validate_episodes", 0)
            # without validation the threshold means nothing: None, so that it cannot differ
            threshold = config["validate_threshold"]
            if threshold is not None or config["validate_episodes"]:
                threshold = check_number(threshold, "validate_threshold")
            config["validate_threshold"] = threshold if config["validate_episodes"] else None
            self._check_seed_ranges(config)
        config["reference"] = check_bool(config["reference"], "reference")
        if "fitness" in config and config["fitness"] not in FITNESSES:
            raise ConfigError(f"fitness={config['fitness']!r} is invalid; expected one of {', '.join(FITNESSES)}")
        if not isinstance(config["config"], str):
            raise ConfigError(f"config={config['config']!r} must be the path of a neat-python INI file")
        cfg = self.neat_config(config)  # a bad file fails here, before any job starts
        if config["config"]:  # the file's contents are the settings: an edited file must not reuse rows
            config["config_sha256"] = hashlib.sha256(Path(config["config"]).read_bytes()).hexdigest()
        if self.variants(config)[1:]:  # neat-python will run: what it refuses fails here, before any job
            if cfg.pop_size < cfg.min_species_size:
                raise ConfigError(f"pop_size={cfg.pop_size} is below the config's min_species_size="
                                  f"{cfg.min_species_size}, which neat-python refuses; raise pop_size or set "
                                  f"reference=false")
            if cfg.excess_coefficient != cfg.compatibility_disjoint_coefficient:
                raise ConfigError(f"compatibility_excess_coefficient={cfg.excess_coefficient} differs from "
                                  f"compatibility_disjoint_coefficient={cfg.compatibility_disjoint_coefficient}, "
                                  "but neat-python has no excess coefficient (it weighs excess genes as disjoint "
                                  "ones) and would run another distance; make them equal or set reference=false")
            if cfg.output_activation != "same":
                raise ConfigError(f"output_activation={cfg.output_activation!r} is ours ([Neuroplastic]); neat-python "
                                  "gives its outputs activation_default and would run another network; remove it "
                                  "or set reference=false")
            from .neat_reference import load
            try:
                load(self.ini_path(config), **({"pop_size": config["pop_size"]} if config["pop_size"] else {}))
            except Exception as exc:  # neat-python raises plain Exceptions for a missing or bad key
                reason = " ".join(str(exc).split())  # neat-python's messages span lines
                raise ConfigError(f"neat-python cannot read {self.ini_path(config)}: {reason} (it runs the same "
                                  "file as the reference; complete the file or set reference=false)") from None
        return config

    @staticmethod
    def _check_seed_ranges(config: dict) -> None:
        from ..evolve.neat.envs import VALIDATION_SEED
        training = config["generations"] * config["episodes"]
        check_seed_ranges(config["seeds"] - 1 + training - 1, training, VALIDATION_SEED, config["validate_episodes"])

    def ini_path(self, config: dict) -> str:
        return config["config"] or str(CONFIGS / self.default_ini)

    def neat_config(self, config: dict):
        from ..evolve import load_config
        cfg = load_config(self.ini_path(config))
        if config["pop_size"]:
            cfg = cfg.replace(pop_size=config["pop_size"])
        return cfg

    def variants(self, config: dict) -> list[str]:
        from .neat_reference import available
        reference = config["reference"] and config.get("fitness", "neat-python") == "neat-python"
        return ["neuroplastic"] + (["neat-python"] if reference and available() else [])

    def jobs(self, config: dict) -> list[dict]:
        return [{"task": self.task, "variant": v, "seed": s}
                for s in range(config["seeds"]) for v in self.variants(config)]

    def run_job(self, job: dict, config: dict, out_dir: Path, progress: bool = False) -> dict:
        if job["variant"] == "neat-python":
            return self._run_reference(job, config)
        from ..evolve import NEAT
        cfg = self.neat_config(config)
        if config.get("fitness") == "paper":
            return self._run_paper(job, cfg, config, out_dir, progress)
        if config.get("validate_episodes"):
            return self._run_validated(job, cfg, config, out_dir, progress)
        if _bits(self.task):
            from ..evolve.neat.tasks import parity_fitness
            bits = _bits(self.task)
            if cfg.num_inputs != bits or cfg.num_outputs != 1:
                raise ConfigError(f"{self.task} needs num_inputs = {bits} and num_outputs = 1")
            neat = NEAT(cfg, seed=job["seed"])
            best = neat.run(parity_fitness(bits), generations=config["generations"], progress=progress)
        else:  # checkpointed after every generation, as the validated runs are: a killed job resumes
            from .resume import partial_path
            partial = partial_path(out_dir, job)
            neat = _resumed_run(cfg, partial, job)
            best = neat.run_env(self.task, episodes=config["episodes"],
                                generations=max(0, config["generations"] - neat.generation),
                                max_steps=config["max_steps"], progress=progress, checkpoint=partial,
                                checkpoint_every=1)
            partial.unlink(missing_ok=True)
        metrics = _run_metrics(neat, best, bool(neat.solved), *_best_sizes(neat))
        if not _bits(self.task):
            from ..evolve.neat.envs import evaluate_env
            returns = evaluate_env(best, self.task, episodes=config["eval_episodes"], max_steps=config["max_steps"])
            metrics["return_mean"], metrics["return_std"] = float(returns.mean()), float(returns.std())
        _save_net(best, job, out_dir)
        return metrics

    def _run_paper(self, job: dict, cfg, config: dict, out_dir: Path, progress: bool) -> dict:
        """XOR scored and stopped the paper's way (method step 5)."""
        import torch

        from ..evolve import NEAT
        from ..evolve.neat.tasks import paper_xor_fitness
        if cfg.num_inputs != 2 or cfg.num_outputs != 1:
            raise ConfigError("fitness=paper is XOR: it needs num_inputs = 2 and num_outputs = 1")
        neat = NEAT(cfg.replace(no_fitness_termination=True), seed=job["seed"])
        paper = paper_xor_fitness()
        winner = []

        def fitness(pop):
            f = paper(pop)
            if not winner and bool(paper.solved.any()):  # the population is still this generation's
                best = int(torch.where(paper.solved, f, -torch.inf).argmax())
                winner.append(neat.population.take(torch.tensor([best])))
            return f

        _evolve_until(neat, fitness, config["generations"], job, progress, lambda row: bool(winner))
        genome = winner[0] if winner else neat.best_genome
        sizes = _genome_sizes(genome, cfg) if winner else _best_sizes(neat)
        best = _member(genome, cfg).to_net(0)
        metrics = _run_metrics(neat, best, bool(winner), *sizes)
        _save_net(best, job, out_dir)
        return metrics

    def _run_validated(self, job: dict, cfg, config: dict, out_dir: Path, progress: bool) -> dict:
        """An environment run whose threshold is confirmed on validation episodes (method step 4)."""
        from ..evolve.neat.envs import VALIDATION_SEED, EnvFitness, evaluate_env
        from .resume import partial_path
        partial = partial_path(out_dir, job)
        # validated: (validation mean, genome) of every genome that met the threshold;
        # validation_s: outside the history's wall_s, as neat-python's row leaves it out
        neat, validated, validation_s = _resumed_validated_run(cfg.replace(no_fitness_termination=True), partial, job)
        train = EnvFitness(self.task, episodes=config["episodes"], max_steps=config["max_steps"], seed=job["seed"])
        generation_best = []  # this generation's fittest genome, taken before reproduction replaces it

        def fitness(pop):
            train.set_generation(neat.generation)
            f = train(pop)
            generation_best[:] = [neat.population.take(f.argmax().reshape(1))]
            return f

        def passed(row) -> bool:
            if not row["solved"]:
                return False
            genome = generation_best[0]
            member = _member(genome, cfg)
            started = time.perf_counter()
            returns = evaluate_env(member, self.task, episodes=config["validate_episodes"], seed=VALIDATION_SEED,
                                   max_steps=config["max_steps"])
            validation_s[0] += time.perf_counter() - started
            validated.append((float(returns.mean()), genome))
            return validated[-1][0] >= config["validate_threshold"]

        def checkpoint() -> None:  # after every generation: an interrupted job continues from here
            from ..core.checkpoint import save
            save(partial, None, step=neat.generation, extra={
                "neat": neat.state_dict(), "validation_s": validation_s[0],
                "validated": [{"mean": mean, "genome": genome.state()} for mean, genome in validated]})

        try:
            _evolve_until(neat, fitness, config["generations"], job, progress, passed, checkpoint)
        finally:
            train.close()
        partial.unlink(missing_ok=True)
        solved, chosen = pick_validated(validated, config["validate_threshold"])
        if chosen is not None:
            validation_mean, genome = chosen
            sizes = _genome_sizes(genome, cfg)
            best = _member(genome, cfg).to_net(0)
        else:
            validation_mean, best, sizes = None, neat.best_net(), _best_sizes(neat)
        metrics = _run_metrics(neat, best, solved, *sizes)
        metrics.update(validations=len(validated), validation_return=validation_mean,
                       validation_episodes=len(validated) * config["validate_episodes"], validation_s=validation_s[0])
        returns = evaluate_env(best, self.task, episodes=config["eval_episodes"], max_steps=config["max_steps"])
        metrics["return_mean"], metrics["return_std"] = float(returns.mean()), float(returns.std())
        _save_net(best, job, out_dir)
        return metrics

    def _run_reference(self, job: dict, config: dict) -> dict:
        import contextlib
        import io

        from .neat_reference import run_parity, version
        if not _bits(self.task):
            from .neat_reference import run_env
            with contextlib.redirect_stdout(io.StringIO()):
                out = run_env(self.ini_path(config), self.task, job["seed"], config["generations"],
                              config["episodes"], config["max_steps"], config["eval_episodes"],
                              config.get("validate_episodes", 0), config.get("validate_threshold", 0.0),
                              **({"pop_size": config["pop_size"]} if config["pop_size"] else {}))
        else:
            with contextlib.redirect_stdout(io.StringIO()):  # neat-python prints as it goes
                pop = {"pop_size": config["pop_size"]} if config["pop_size"] else {}
                out = run_parity(self.ini_path(config), _bits(self.task), job["seed"], config["generations"], **pop)
        out["ms_per_generation"] = 1000 * out["wall_s"] / max(1, out["generations"] + (1 if out["solved"] else 0))
        out["neat_python"] = version()
        return out

    def report(self, results: dict, out_dir) -> None:
        from .neat_report import write_report
        write_report(results, Path(out_dir), paper=PAPER.get(self.task), default_ini=self.default_ini)

    def job_files(self, job: dict, config: dict, out_dir: Path) -> list[Path]:
        from .runner import job_name
        return [] if job["variant"] != "neuroplastic" else [out_dir / "nets" / f"{job_name(job)}.ckpt"]

    def option_groups(self) -> list[tuple[str, dict, dict]]:
        return [("experiment", dict(self.defaults), OPTION_NOTES)]

    @property
    def presets(self) -> dict:
        return {"--quick": self.quick, "--full": self.full}


HISTORY_KEYS = ("step", "best_fitness", "mean_fitness", "species", "mean_hidden", "mean_edges", "evaluations",
                "wall_s")


def _evolve_until(neat, fitness, generations: int, job: dict, progress: bool, done, checkpoint=None) -> None:
    """neat.step(fitness) until `generations` generations in all (a resumed run counts the
    ones it had), stopping after the first whose history row makes done(row) true; then
    `checkpoint()`, when given, after every generation that does not end the run (so a run
    resumed from one has never ended)."""
    import tqdm.auto
    for _ in tqdm.auto.trange(neat.generation, generations, desc=f"NEAT seed={job['seed']}", disable=not progress,
                              leave=False, unit="gen"):
        if done(neat.step(fitness)):
            break
        if checkpoint is not None:
            checkpoint()


def _resumed_run(cfg, partial: Path, job: dict):
    """A NEAT run of `cfg`: new, or resumed from the job's checkpoint (see resume.resumed)."""
    from ..evolve import NEAT
    from .resume import resumed
    return resumed(partial, job, lambda path: _same_run(NEAT.load(path), cfg, job),
                   lambda: NEAT(cfg, seed=job["seed"]))


def _same_run(neat, cfg, job: dict):
    """`neat`, when it is a run of `cfg` and the job's seed (else a CheckpointError)."""
    from ..errors import CheckpointError
    if neat.config != cfg or neat.seed != job["seed"]:
        raise CheckpointError("it was written with another config or seed")
    return neat


def _resumed_validated_run(cfg, partial: Path, job: dict):
    """(NEAT run, validations, validation seconds): new, or resumed from the job's checkpoint
    (one of another config or seed cannot be resumed; see resume.resumed)."""
    from ..core.checkpoint import load
    from ..evolve import NEAT
    from ..evolve.neat.genome import Genomes
    from .resume import resumed

    def load_run(path):
        neat = _same_run(NEAT.load(path), cfg, job)
        extra = load(path)["extra"]
        validated = [(float(v["mean"]), Genomes.from_state(v["genome"])) for v in extra["validated"]]
        return neat, validated, [float(extra["validation_s"])]
    return resumed(partial, job, load_run, lambda: (NEAT(cfg, seed=job["seed"]), [], [0.0]))


def pick_validated(validated: list, threshold: float) -> tuple[bool, tuple | None]:
    """From the (validation mean, genome) of every validation of a run, in order: (solved, the
    pair to export), the last when it passed (a run stops at its first pass), else the best,
    else None. Ours and neat-python's rows choose by this one rule."""
    solved = bool(validated) and validated[-1][0] >= threshold
    return solved, (validated[-1] if solved else max(validated, key=lambda v: v[0])) if validated else None


def _member(genome, cfg):
    """One genome's phenotype, a one-member GraphBatch."""
    import torch

    from ..evolve.neat.phenotype import phenotypes
    with torch.no_grad():
        return phenotypes(genome, cfg.num_inputs, cfg.num_outputs)


def _genome_sizes(genome, cfg) -> tuple[int, int]:
    """Hidden nodes and enabled connections of a one-genome Genomes."""
    return int(genome.n_hidden(cfg.n_fixed)[0]), int(genome.n_enabled()[0])


def _best_sizes(neat) -> tuple[int, int]:
    """Hidden nodes and enabled connections of the fittest genome of the run's best generation."""
    index = max(range(len(neat.history)), key=lambda i: neat.history[i]["best_fitness"])
    return int(neat.history[index]["best_hidden"]), int(neat.history[index]["best_edges"])


def _run_metrics(neat, best, solved: bool, n_hidden: int, n_edges: int) -> dict:
    """A run's row: solved, generations (the index of the solving generation, else the budget
    spent), evaluations, sizes, speed and the per-generation history."""
    history = neat.history
    return {"solved": solved, "generations": history[-1]["generation"] if solved else len(history),
            "evaluations": neat.evaluations, "best_fitness": neat.best_fitness,
            "n_hidden": n_hidden, "n_edges": n_edges,
            "n_params": int(best.n_params),
            "ms_per_generation": 1000 * sum(r["wall_s"] for r in history) / len(history),
            "history": [{k: r[k] for k in HISTORY_KEYS} for r in history]}


def _save_net(best, job: dict, out_dir: Path) -> None:
    """The best genome as a GraphNet checkpoint."""
    from ..core.checkpoint import save
    from .runner import job_name
    (out_dir / "nets").mkdir(exist_ok=True)
    save(out_dir / "nets" / f"{job_name(job)}.ckpt", best)


# The 2002 paper's XOR figures (100 runs), for the report.
PAPER = {"xor": {"runs": 100, "solved": 100, "generations": 32, "evaluations": 4755, "n_hidden": 2.35,
                 "n_edges": 7.48}}

register(NEATExperiment("neat-xor", "NEAT on XOR (neat-python's example config) beside neat-python",
                        "xor", "xor.ini", {"fitness": "neat-python"}, {"seeds": 3, "generations": 100}))
register(NEATExperiment("neat-parity", "NEAT on 3-bit parity (the XOR config with 3 inputs) beside neat-python",
                        "parity3", "parity3.ini", {"seeds": 20, "generations": 500},
                        {"seeds": 2, "generations": 60}))
register(NEATExperiment("neat-cartpole", "NEAT on CartPole-v1 (a smoke test)",
                        "CartPole-v1", "cartpole.ini",
                        {"seeds": 5, "generations": 30, "episodes": 3, "max_steps": 500, "eval_episodes": 100,
                         "validate_episodes": 0, "validate_threshold": 475.0},
                        {"seeds": 1, "generations": 3, "episodes": 2, "max_steps": 200, "eval_episodes": 10}))
register(NEATExperiment("neat-lunarlander", "NEAT on LunarLander-v3, stopped on validation episodes",
                        "LunarLander-v3", "lunarlander.ini",
                        {"seeds": 3, "generations": 300, "episodes": 3, "max_steps": 1000, "eval_episodes": 100,
                         "validate_episodes": 30, "validate_threshold": 220.0},
                        {"seeds": 1, "generations": 2, "episodes": 1, "max_steps": 100, "eval_episodes": 3,
                         "pop_size": 20, "validate_episodes": 2}))
