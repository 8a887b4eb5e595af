"""A network that edits its own graph (neuroplastic.evolve.self_editing), beside the same ES
on a fixed network of the size it builds, and beside NEAT, on gymnasium control tasks.

Method, top to bottom (docs/self-editing.md gives the why of each choice):
  1. self-editing: sep-CMA-ES (`ES`, the `cma` library) over the editor's parameters, x0 = 0,
     `popsize` candidates a generation, each played on the generation's `episodes` episodes
     (the same reset seeds for all); fitness = mean return. Every episode starts from inputs
     wired straight to outputs and the editor grows and rewires it every `edit_every` steps.
     With --workers N (Ray) a generation's candidates run as N chunks in parallel.
  2. The run lasts `generations`. The final editor is the ES's best candidate or its mean,
     whichever scores higher on `select_episodes` validation episodes (reset seeds 5000+).
  3. It is scored on `eval_episodes` held-out episodes (reset seeds 10000+, HELD_OUT_SEED),
     solved when the mean reaches the task's goal (goals.py);
     the row keeps the self-built networks' size over the episode and the final network of
     the first held-out episode (nets/<job>.ckpt, drawn in the report).
  4. static: the same ES, budget and selection on a fixed MLP whose hidden layer has as many
     neurons as the self-built networks end with (mean over the held-out episodes, rounded;
     read from the self-editing row of the same task and seed, run first if absent).
  5. neat: NEAT (npl.evolve.NEAT, the package's cartpole.ini with the env's inputs and
     outputs) with pop = popsize for as many generations, i.e. the same episode budget; it
     stops at its fitness_threshold, STOP_AT, as neat-python does.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..core.validate import check_bool, check_int, check_number
from ..errors import ConfigError
from . import register
from .goals import goal_return
from .options import check_seed_ranges, string_list, with_overrides

ENVS = ["CartPole-v1", "LunarLander-v3"]
VARIANTS = ("self-editing", "static", "neat")
STOP_AT = {"CartPole-v1": 500.0, "LunarLander-v3": 300.0}  # NEAT's fitness_threshold (it stops there)
SELECT_SEED = 5_000  # validation episodes for choosing the final candidate (never the held-out ones)

DEFAULT = {"envs": ENVS, "variants": list(VARIANTS), "seeds": 1,
           # evolution strategy
           "popsize": 32, "sigma": 0.3, "generations": 100, "episodes": 3, "max_steps": 0,
           # the self-editing controller
           "edit_every": 10, "max_hidden": 16, "dim": 8, "weight_max": 3.0, "reward_scale": 1.0,
           "innate_weights": False, "editor_sigma": 1.0,
           # evaluation
           "select_episodes": 10, "eval_episodes": 100}
QUICK = {"envs": ["CartPole-v1"], "popsize": 8, "generations": 2, "episodes": 1, "max_steps": 100,
         "select_episodes": 2, "eval_episodes": 5, "max_hidden": 4}
FULL: dict = {}

OPTION_NOTES = {
    "envs": "gymnasium ids with a 1-D Box observation and Discrete or 1-D Box actions",
    "variants": "self-editing, static (fixed MLP of the self-built size), neat",
    "popsize": "ES candidates (and NEAT genomes) a generation", "sigma": "the ES's initial step size",
    "generations": "the ES's budget (NEAT stops earlier at its fitness_threshold, STOP_AT)",
    "episodes": "episodes per candidate and generation (the same for all candidates)",
    "max_steps": "steps per episode; 0: the env's own limit",
    "edit_every": "env steps between the editor's rounds", "max_hidden": "cap on self-built hidden neurons",
    "dim": "the editor's neuron-state size", "weight_max": "largest weight a command sets",
    "reward_scale": "the window's mean reward is read as tanh(r / reward_scale)",
    "innate_weights": "true: the candidate also holds the input -> output edges' starting weights, and weight "
                      "commands move an edge towards its innate weight plus the head's value",
    "editor_sigma": "the editor's parameters' initial step size, as a multiple of sigma (the innate weights "
                    "keep sigma)",
    "select_episodes": "validation episodes to choose between the ES's best and mean",
    "eval_episodes": "held-out episodes (reset seeds 10000+) for the final score",
}


def _solved(task: str, returns, max_steps: int | None) -> bool | None:
    """The held-out mean reaches the task's goal; None for a task with none (or cut short)."""
    goal = goal_return(task, max_steps)
    return None if goal is None else bool(returns.mean() >= goal)


def connected_hidden(batch) -> torch.Tensor:
    """(P,) hidden neurons with at least one incoming and one outgoing edge (a relay whose
    edges were all removed later still counts as a neuron, but computes nothing)."""
    P, N = batch.bias.shape
    live = batch.edge_alive
    rows = torch.arange(P)[:, None].expand_as(live)[live]
    into = torch.zeros(P, N, dtype=torch.bool)
    out = torch.zeros(P, N, dtype=torch.bool)
    into[rows, batch.dst[live].long()] = True
    out[rows, batch.src[live].long()] = True
    hidden = batch.neuron_alive.clone()
    hidden[:, :batch.n_in + batch.n_out] = False
    return (hidden & into & out).sum(1)


def _chunks() -> int:
    from ..evolve.parallel import ray_chunks
    return ray_chunks()


class SelfEditingExperiment:
    name = "self-editing"
    description = "a network that edits its own graph, editor evolved by sep-CMA-ES; beside a static net and NEAT"
    inputs = "envs"
    presets = {"--quick": QUICK, "--full": FULL}
    settings_before = {"innate_weights": False, "editor_sigma": 1.0}  # folders written before the options existed

    def config(self, quick: bool, full: bool, overrides: dict) -> dict:
        from ..evolve.neat.envs import EnvFitness
        config = with_overrides(self.name, DEFAULT, QUICK if quick else FULL if full else {}, overrides)
        for key in ("envs", "variants"):
            config[key] = string_list(config, key)
        for v in config["variants"]:
            if v not in VARIANTS:
                raise ConfigError(f"variant={v!r} is not supported; expected one of {list(VARIANTS)}")
        for key, low in (("seeds", 1), ("popsize", 2), ("generations", 1), ("episodes", 1), ("max_steps", 0),
                         ("edit_every", 1), ("max_hidden", 0), ("dim", 1), ("select_episodes", 1),
                         ("eval_episodes", 1)):
            config[key] = check_int(config[key], key, low)
        training = config["generations"] * config["episodes"]  # job seed s trains on s + 0 .. training - 1
        check_seed_ranges(config["seeds"] - 1 + training - 1, training, SELECT_SEED, config["select_episodes"],
                          "select_episodes")
        config["innate_weights"] = check_bool(config["innate_weights"], "innate_weights")
        for key in ("sigma", "weight_max", "reward_scale", "editor_sigma"):
            config[key] = check_number(config[key], key, above=0)
        from ..evolve.self_editing import check_memory
        # the most members one rollout plays: a generation, the selection or the held-out episodes
        members = max(config["popsize"] * config["episodes"], 2 * config["select_episodes"], config["eval_episodes"])
        for env_id in config["envs"]:  # unknown ids, unsupported spaces and too large caps fail here, before any job
            env = EnvFitness(env_id, max_steps=config["max_steps"] or None)
            env.close()
            if "self-editing" in config["variants"]:
                check_memory(members, env.n_in + env.n_out + config["max_hidden"])
        return config

    def jobs(self, config: dict) -> list[dict]:
        order = [v for v in VARIANTS if v in config["variants"]]  # self-editing first: static reads it
        return [{"task": env, "variant": v, "seed": s}
                for s in range(config["seeds"]) for env in config["envs"] for v in order]

    def after(self, job: dict) -> list[dict]:
        """The static variant is sized by its self-editing twin's row (`_matched_hidden`)."""
        return [{**job, "variant": "self-editing"}] if job["variant"] == "static" else []

    # ------------------------------------------------------------- one job
    def run_job(self, job: dict, config: dict, out_dir: Path, progress: bool = False) -> dict:
        if job["variant"] == "neat":
            return self._run_neat(job, config, progress)
        from ..evolve.controllers import StaticControllers
        from ..evolve.self_editing import SelfEditingControllers
        max_steps = config["max_steps"] or None
        common = {"env_id": job["task"], "episodes": config["episodes"], "max_steps": max_steps, "seed": job["seed"]}
        if job["variant"] == "self-editing":
            cls = SelfEditingControllers
            settings = {**common, **{k: config[k] for k in ("edit_every", "max_hidden", "dim", "weight_max",
                                                            "reward_scale", "innate_weights")}}
        else:
            hidden = self._matched_hidden(job, config, out_dir)
            cls, settings = StaticControllers, {**common, "hidden": (hidden,) if hidden else ()}
        metrics, held_out = self._evolve(cls, settings, job, config, out_dir, progress)
        if job["variant"] == "static":
            metrics["n_hidden"] = int(sum(settings["hidden"]))
            metrics["n_edges"] = metrics["n_synapses"]
        else:
            self._self_built(metrics, held_out, job, out_dir)
        return metrics

    def _evolve(self, cls, settings: dict, job: dict, config: dict, out_dir: Path, progress: bool):
        """The ES run (checkpointed every generation, so an interrupted job continues), the
        selection and the held-out score; also returns the population that played the held-out
        episodes (a self-editing one holds the self-built networks)."""
        from ..evolve.controllers import HELD_OUT_SEED
        from ..evolve.es import ES
        from ..evolve.parallel import PopulationFitness
        from .resume import partial_path, resumed_es, save_es
        started = time.perf_counter()
        fitness = PopulationFitness(cls, settings, chunks=_chunks())
        c = fitness.controllers

        partial = partial_path(out_dir, job)

        def on_generation(row):
            last = getattr(c, "last", None)
            if fitness.chunks == 1 and last is not None:  # what the generation's edits cost (in-process runs only)
                row["edit_s"], row["edit_rounds"] = last.edit_s, len(last.history)
            save_es(es, partial)

        try:
            stds = None if job["variant"] != "self-editing" or config["editor_sigma"] == 1 else \
                c.layout.step_sizes(config["editor_sigma"])
            es = resumed_es(lambda: ES(c.n_params, popsize=config["popsize"], sigma=config["sigma"], seed=job["seed"],
                                       stds=stds), partial, job)
            fitness.generation = es.generation
            es.run(fitness, config["generations"], progress=progress,
                   on_generation=on_generation)
            # the final candidate: the ES's best or its mean, on validation episodes
            options = torch.stack([es.best, es.mean()])
            select = c.returns(options, SELECT_SEED, config["select_episodes"])
            pick = int(np.argmax(select.mean(1)))
            final = options[pick]
            train_s = time.perf_counter() - started
            started = time.perf_counter()
            returns = c.evaluate(final, episodes=config["eval_episodes"], seed=HELD_OUT_SEED)
            eval_s = time.perf_counter() - started
            held_out = getattr(c, "last", None)
            keys = ("generation", "best", "mean", "sigma", "wall_s", "edit_s", "edit_rounds")
            metrics = {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
                       "returns": returns.tolist(), "solved": _solved(job["task"], returns, config["max_steps"]),
                       "generations": es.generation, "evaluations": es.generation * config["popsize"] * c.episodes,
                       "n_params": int(c.n_params), "n_synapses": int(c.n_synapses), "selected": ["best", "mean"][pick],
                       "select_return": select.mean(1).tolist(), "train_s": train_s, "eval_s": eval_s,
                       "chunks": fitness.chunks,
                       "history": [{k: r[k] for k in keys if k in r} for r in es.history],
                       "candidate": final.tolist()}
        finally:
            fitness.close()
        partial.unlink(missing_ok=True)
        return metrics, held_out

    def _self_built(self, metrics: dict, pop, job: dict, out_dir: Path) -> None:
        """Size of the self-built networks over the held-out episodes (an episode that ended
        keeps its last size), the first one's final network saved, and what the edits cost."""
        from ..core.checkpoint import save
        from .runner import job_name
        metrics["size_trace"] = [{"step": s, "hidden_mean": float(h.float().mean()), "hidden_max": int(h.max()),
                                  "edges_mean": float(e.float().mean())} for s, h, e in pop.history]
        final_h, final_e = pop.batch.n_hidden.float(), pop.batch.n_edges.float()
        metrics["n_hidden"], metrics["n_edges"] = float(final_h.mean()), float(final_e.mean())
        metrics["n_hidden_std"], metrics["n_edges_std"] = float(final_h.std()), float(final_e.std())
        metrics["n_hidden_connected"] = float(connected_hidden(pop.batch).float().mean())
        metrics["held_out_edit_rounds"], metrics["held_out_edit_s"] = len(pop.history), pop.edit_s
        (out_dir / "nets").mkdir(exist_ok=True)
        save(out_dir / "nets" / f"{job_name(job)}.ckpt", pop.batch.to_net(0))

    def _matched_hidden(self, job: dict, config: dict, out_dir: Path) -> int:
        from .runner import job_name, read_row, say
        twin = {**job, "variant": "self-editing"}
        path = out_dir / "rows" / f"{job_name(twin)}.json"
        row = read_row(path, twin) if path.is_file() else None  # a damaged row is named and removed
        if row is not None and row["metrics"]["n_hidden"] > config["max_hidden"]:
            say(f"{path} is damaged (n_hidden={row['metrics']['n_hidden']} is above max_hidden="
                f"{config['max_hidden']}); computing its job again")
            path.unlink()
            row = None
        # without a readable twin (variants=static, or a damaged row): compute the twin here
        metrics = row["metrics"] if row is not None else self.run_job(twin, config, out_dir)
        return int(round(metrics["n_hidden"]))

    def _run_neat(self, job: dict, config: dict, progress: bool) -> dict:
        from ..evolve import NEAT, load_config
        from ..evolve.controllers import HELD_OUT_SEED
        from ..evolve.neat.envs import EnvFitness, evaluate_env
        from .neat import CONFIGS
        probe = EnvFitness(job["task"], max_steps=config["max_steps"] or None)
        stop = STOP_AT.get(job["task"])  # an env with none: NEAT runs the whole budget
        # a Box action space: identity outputs, clipped to the bounds as the other variants' are
        # (the file's sigmoid outputs would span (0, 1) only)
        outputs = {} if probe.discrete else {"output_activation": "identity"}
        cfg = load_config(str(CONFIGS / "cartpole.ini")).replace(
            num_inputs=probe.n_in, num_outputs=probe.n_out, pop_size=config["popsize"], **outputs,
            **({"fitness_threshold": stop} if stop is not None else {"no_fitness_termination": True}))
        probe.close()
        max_steps = config["max_steps"] or None
        neat = NEAT(cfg, seed=job["seed"])
        best = neat.run_env(job["task"], episodes=config["episodes"], generations=config["generations"],
                            max_steps=max_steps, progress=progress)
        returns = evaluate_env(best, job["task"], episodes=config["eval_episodes"], seed=HELD_OUT_SEED,
                               max_steps=max_steps)
        return {"return_mean": float(returns.mean()), "return_std": float(returns.std()), "returns": returns.tolist(),
                "solved": _solved(job["task"], returns, config["max_steps"]),
                "generations": len(neat.history), "evaluations": int(neat.evaluations) * config["episodes"],
                "n_hidden": int(best.n_hidden), "n_edges": int(best.n_edges), "n_params": int(best.n_params),
                "history": [{"generation": i + 1, "best": r["best_fitness"], "mean": r["mean_fitness"],
                             "wall_s": r["wall_s"]} for i, r in enumerate(neat.history)]}

    def job_files(self, job: dict, config: dict, out_dir: Path) -> list[Path]:
        from .runner import job_name
        return [out_dir / "nets" / f"{job_name(job)}.ckpt"] if job["variant"] == "self-editing" else []

    def report(self, results: dict, out_dir) -> None:
        from .self_editing_report import write_report
        write_report(results, Path(out_dir))

    def option_groups(self) -> list[tuple[str, dict, dict]]:
        return [("experiment", dict(DEFAULT), OPTION_NOTES)]


register(SelfEditingExperiment())
