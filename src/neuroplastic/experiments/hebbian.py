"""Hebbian plasticity (Najarro & Risi 2020) beside a static network, on control tasks.

  hebbian   an MLP whose weights start random in every episode and change only by the
            per-synapse ABCD rule, Δw = η(A·o_i·o_j + B·o_i + C·o_j + D), with the five
            coefficients of every synapse evolved by an ES; beside it the same MLP with its
            weights evolved directly by the same ES on the same budget ("static").

Method, top to bottom:
  1. The network: inputs -> `hidden` tanh layers -> linear outputs, no biases (the authors'
     architecture, narrower: their 128-64 is for pixels). Discrete actions take the argmax.
  2. The ES: sep-CMA-ES (`npl.evolve.ES`, the `cma` library), `popsize` candidates a
     generation for `generations` generations, each candidate played on the same `episodes`
     episodes of its generation (env seeds and, for Hebbian networks, initial weights
     U(-init, init) shared by all candidates). Both variants get the same popsize, generations
     and episodes: the same number of episodes.
  3. After evolution the ES mean (the search distribution's centre, as OpenAI-ES evaluates
     θ) plays `eval_episodes` held-out episodes (env seeds 10000+, fresh random initial weights
     for the Hebbian network): return_mean, return_std.
A job checkpoints its ES after every generation (`partial/`), so a killed run continues.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..core.validate import check_int, check_number
from ..errors import ConfigError
from . import register
from .options import check_seed_ranges, layer_widths, string_list, with_overrides

VARIANTS = ["hebbian", "static"]
JOB_SEED_STRIDE = 1000  # job seed s plays env seeds from 1000 s: the seeds' episodes differ
DEFAULTS = {"envs": ["CartPole-v1"], "variants": VARIANTS, "seeds": 3, "hidden": [32, 32], "popsize": 32,
            "sigma": 0.5, "generations": 40, "episodes": 2, "eval_episodes": 100, "max_steps": 0, "init": 0.1,
            "normalise": "layer"}
QUICK = {"seeds": 1, "hidden": [8], "popsize": 8, "generations": 3, "episodes": 1, "eval_episodes": 5,
         "max_steps": 100}
FULL = {"envs": ["CartPole-v1", "LunarLander-v3"], "seeds": 3, "generations": 150, "popsize": 48}
OPTION_NOTES = {
    "envs": "gymnasium ids with a 1-D Box observation and Discrete or 1-D Box actions",
    "variants": "hebbian (evolved ABCD rule, random weights every episode), static (evolved weights)",
    "hidden": "widths of the tanh hidden layers ([]: inputs straight to outputs)",
    "popsize": "ES candidates a generation",
    "sigma": "the ES's initial step size",
    "generations": "ES generations (the same for both variants)",
    "episodes": "episodes per candidate and generation (the same ones for every candidate)",
    "eval_episodes": "held-out episodes for the final ES mean",
    "max_steps": "steps per episode; 0: the env's own limit",
    "init": "Hebbian initial weights U(-init, init), redrawn every episode",
    "normalise": "'layer': each layer divided by its max |w| after every Hebbian update; 'none'",
}


class HebbianExperiment:
    name = "hebbian"
    description = "Hebbian ABCD rules evolved by an ES vs static weights evolved by the same ES"
    inputs = "envs"

    def config(self, quick: bool, full: bool, overrides: dict) -> dict:
        config = with_overrides(self.name, DEFAULTS, QUICK if quick else FULL if full else {}, overrides)
        config["envs"] = string_list(config, "envs")
        config["variants"] = string_list(config, "variants")
        unknown = sorted(set(config["variants"]) - set(VARIANTS))
        if unknown:
            raise ConfigError(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
        for key, minimum in (("seeds", 1), ("popsize", 2), ("generations", 1), ("episodes", 1),
                             ("eval_episodes", 1), ("max_steps", 0)):
            config[key] = check_int(config[key], key, minimum)
        training = config["generations"] * config["episodes"]  # job seed s trains on 1000 s + 0 .. training - 1
        if training > JOB_SEED_STRIDE and config["seeds"] > 1:  # seed s + 1 would replay seed s's later episodes
            raise ConfigError(f"generations x episodes = {training} training episodes a job; with more than one "
                              f"seed at most {JOB_SEED_STRIDE}, so that the seeds play episodes of their own")
        check_seed_ranges(JOB_SEED_STRIDE * (config["seeds"] - 1) + training - 1, training)
        config["sigma"] = check_number(config["sigma"], "sigma", above=0)
        config["init"] = check_number(config["init"], "init", 0)
        config["hidden"] = layer_widths(config, "hidden", "32,32", allow_none=True)
        if config["normalise"] not in ("layer", "none"):
            raise ConfigError(f"normalise={config['normalise']!r} must be 'layer' or 'none'")
        for env_id in config["envs"]:  # unknown ids and unusable spaces fail here, before any job
            self.controllers(env_id, "static", config, 0).close()
        return config

    def controllers(self, env_id: str, variant: str, config: dict, seed: int):
        from ..evolve.controllers import HebbianControllers, StaticControllers
        common = dict(hidden=config["hidden"], episodes=config["episodes"], seed=seed,
                      max_steps=config["max_steps"] or None)
        if variant == "static":
            return StaticControllers(env_id, **common)
        return HebbianControllers(env_id, **common, init=config["init"],
                                  normalise=None if config["normalise"] == "none" else config["normalise"])

    def jobs(self, config: dict) -> list[dict]:
        return [{"task": env, "variant": v, "seed": s}
                for s in range(config["seeds"]) for env in config["envs"] for v in config["variants"]]

    def run_job(self, job: dict, config: dict, out_dir: Path, progress: bool = False) -> dict:
        from ..evolve.es import ES
        from .resume import partial_path, resumed_es, save_es
        from .runner import job_name
        task = self.controllers(job["task"], job["variant"], config, seed=JOB_SEED_STRIDE * job["seed"])
        partial = partial_path(out_dir, job)
        es = resumed_es(lambda: ES(task.n_params, popsize=config["popsize"], sigma=config["sigma"], seed=job["seed"]),
                        partial, job)
        task.generation = es.generation
        started = time.perf_counter()
        try:
            es.run(task, config["generations"], progress=progress,
                   on_generation=lambda row: save_es(es, partial))
            mean = es.mean()
            returns = task.evaluate(mean, episodes=config["eval_episodes"])
        finally:
            task.close()
        metrics = {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
                   "returns": returns.tolist(), "n_params": task.n_params, "n_synapses": task.n_synapses,
                   "n_hidden": sum(config["hidden"]), "n_edges": task.n_synapses,
                   "evaluations": es.generation * config["popsize"] * config["episodes"],
                   "generations": es.generation,
                   # every generation's seconds (those before a resume too); this attempt's alone
                   "evolve_s": sum(r["wall_s"] for r in es.history),
                   "evolve_s_this_attempt": time.perf_counter() - started,
                   "history": [{"step": r["generation"], "best": r["best"], "mean": r["mean"], "sigma": r["sigma"],
                                "wall_s": r["wall_s"]} for r in es.history]}
        (out_dir / "nets").mkdir(exist_ok=True)
        self.save_result(task, mean, out_dir / "nets" / f"{job_name(job)}.ckpt")
        partial.unlink(missing_ok=True)
        return metrics

    @staticmethod
    def save_result(task, candidate, path: Path) -> None:
        """The evolved result as a checkpoint: the static network, or the template network with
        the evolved Hebbian rule (its weights are redrawn every episode)."""
        from ..core.checkpoint import save
        from ..evolve.controllers import HebbianControllers
        if isinstance(task, HebbianControllers):
            save(path, task.template, rule=task.rule(candidate.reshape(1, -1)))
        else:
            save(path, task.network(candidate))

    def job_files(self, job: dict, config: dict, out_dir: Path) -> list[Path]:
        from .runner import job_name
        return [out_dir / "nets" / f"{job_name(job)}.ckpt"]

    def report(self, results: dict, out_dir) -> None:
        from .hebbian_report import write_report
        write_report(results, Path(out_dir))

    def option_groups(self) -> list[tuple[str, dict, dict]]:
        return [("experiment", dict(DEFAULTS), OPTION_NOTES)]

    @property
    def presets(self) -> dict:
        return {"--quick": QUICK, "--full": FULL}


register(HebbianExperiment())
