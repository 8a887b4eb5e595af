"""Reproducible experiments, registered by name (`neuroplastic list`, `neuroplastic run NAME`).

An experiment is a small object with one job each:
  * `config(quick, full, overrides)` -> the validated config dict (defaults visible at the top
    of its module, like a paper's method section);
  * `jobs(config)` -> the list of independent runs (task x variant x seed);
  * `run_job(job, config, out_dir, progress=False)` -> that run's metrics (a plain dict);
  * `report(results, out_dir)` -> writes report.md and plots from results.json's content;
  * `option_groups()` -> [(title, {option: default}, {option: note})] for `run NAME --help`,
    and `presets` -> {"--quick": {...}, "--full": {...}}, the values those flags change;
  * `inputs` -> "envs" or "data": which of --envs (control tasks) and --data (a dataset) it takes;
  * `job_files(job, config, out_dir)` (optional) -> the checkpoint files a job reads or writes,
    which the runner checks before it counts the job as done;
  * `after(job)` (optional) -> the jobs whose rows this job reads (`jobs` lists them before
    it): on Ray it starts once they are done.
The runner (`runner.py`) does the rest: resume, Ray fan-out, progress, results.json.
"""
from __future__ import annotations

from ..errors import UnknownNameError

EXPERIMENTS: dict = {}


def register(experiment):
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def get_experiment(name: str):
    _load_all()
    if not isinstance(name, str) or name not in EXPERIMENTS:  # a hand-edited results.json may hold anything
        raise UnknownNameError(f"unknown experiment {name!r}; known: {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name]


def _load_all() -> None:
    from . import dcs, den, gng, hebbian, lottery, neat, self_editing, smgrnn, urn  # noqa: F401  (each registers itself)


def all_experiments() -> dict:
    _load_all()
    return dict(sorted(EXPERIMENTS.items()))
