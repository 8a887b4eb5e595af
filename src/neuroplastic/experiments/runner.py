"""Run an experiment's jobs in-process or on Ray, resumably, and write results.json.

Each finished job is written at once to DIR/rows/<job>.json (atomically), so an interrupted
run loses at most the jobs in flight: running the same command again skips finished jobs.
Jobs are independent and seeded, and every job runs with one torch thread, so the numbers
are the same in-process and on any number of Ray workers.
"""
from __future__ import annotations

import json
import platform
import shutil
import socket
import time
from pathlib import Path

import torch

from ..core.checkpoint import atomic_write_bytes, make_output_dir
from ..errors import ConfigError
from . import get_experiment


def job_name(job: dict) -> str:
    return f"{job['task']}__{job['variant']}__seed{job['seed']}".replace("/", "_")


def _execute(name: str, job: dict, config: dict, out_dir: str, progress: bool = False) -> dict:
    """Run one job (also the body of the Ray task). `progress`: a bar inside the job too (only
    in-process; Ray workers' output is not the user's terminal)."""
    torch.set_num_threads(1)
    experiment = get_experiment(name)
    started = time.perf_counter()
    metrics = experiment.run_job(job, config, Path(out_dir), progress=progress)
    metrics.setdefault("wall_s", time.perf_counter() - started)
    return {"task": job["task"], "variant": job["variant"], "seed": job["seed"], "metrics": metrics}


def environment() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "machine": f"{platform.system()} {platform.machine()}", "cpus": torch.get_num_threads()}


def run_experiment(name: str, out_dir, *, quick: bool = False, full: bool = False,
                   overrides: dict | None = None, workers: int = 1, address: str | None = None,
                   progress: bool = True, command: str | None = None) -> dict:
    experiment = get_experiment(name)
    if quick and full:
        raise ConfigError("--quick and --full exclude each other")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers={workers!r} must be an integer >= 1")
    config = experiment.config(quick=quick, full=full, overrides=overrides or {})
    out = Path(out_dir)
    rows_dir = out / "rows"
    if out.exists() and out.is_dir():
        _check_same_settings(out, config)
    fresh = not out.exists()
    make_output_dir(out, "--out")
    rows_dir.mkdir(exist_ok=True)
    atomic_write_bytes(out / "config.json", json.dumps(config, indent=1).encode())
    try:
        return _run_jobs(experiment, name, config, out, workers, address, progress, command)
    except BaseException:
        files = [p for p in out.rglob("*") if p.is_file()]
        if fresh and files == [out / "config.json"]:  # failed before any work was saved: leave nothing
            shutil.rmtree(out)
        raise


def _run_jobs(experiment, name, config, out, workers, address, progress, command) -> dict:
    rows_dir = out / "rows"
    jobs = experiment.jobs(config)
    pending = [j for j in jobs if not (rows_dir / f"{job_name(j)}.json").exists()]
    if progress and len(pending) < len(jobs):
        print(f"resuming: {len(jobs) - len(pending)} of {len(jobs)} jobs already done in {out}")

    def save_row(row: dict) -> None:
        atomic_write_bytes(rows_dir / f"{job_name(row)}.json", json.dumps(row).encode())

    if workers > 1 or address:
        _run_on_ray(name, pending, config, out, workers, address, progress, save_row)
    else:
        from tqdm.auto import tqdm
        for job in tqdm(pending, desc=name, disable=not progress or not pending):
            save_row(_execute(name, job, config, str(out), progress))

    rows = [json.loads((rows_dir / f"{job_name(j)}.json").read_text()) for j in jobs]
    results = {"experiment": name, "config": config, "environment": environment(), "rows": rows}
    if command:
        results["command"] = command
    atomic_write_bytes(out / "results.json", json.dumps(results, indent=1).encode())
    experiment.report(results, out)
    return results


# Keys that only choose which jobs run; every other setting changes what a job computes.
_JOB_KEYS = ("envs", "variants", "seeds")


def _check_same_settings(out: Path, config: dict) -> None:
    """Finished rows are reused on a rerun only if they were computed with the same settings."""
    for name in ("config.json", "results.json"):  # results.json: runs written before config.json
        path = out / name
        if path.is_file():
            try:
                saved = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                raise ConfigError(f"{path} cannot be read; use another --out or delete it") from None
            saved = saved.get("config", {}) if name == "results.json" else saved
            break
    else:
        return
    current = json.loads(json.dumps(config))
    changed = [k for k in sorted(set(saved) | set(current))
               if k not in _JOB_KEYS and saved.get(k) != current.get(k)]
    if changed and any((out / "rows").glob("*.json")):
        k = changed[0]
        raise ConfigError(f"{out} holds results computed with other settings ({k}: {saved.get(k)!r} -> "
                          f"{current.get(k)!r}); use another --out, or delete {out / 'rows'} to recompute")


def _run_on_ray(name, jobs, config, out, workers, address, progress, save_row) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--workers > 1 needs Ray: pip install 'neuroplastic[ray]'") from None
    if not ray.is_initialized():
        if address:
            _check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:  # something answers, but not Ray
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ConfigError(f"--address {address!r}: no Ray cluster there ({reason})") from None
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(_execute)
    futures = [remote.remote(name, job, config, str(out)) for job in jobs]
    from tqdm.auto import tqdm
    bar = tqdm(total=len(futures), desc=f"{name} (ray)", disable=not progress or not futures)
    while futures:
        done, futures = ray.wait(futures, num_returns=1)
        save_row(ray.get(done[0]))
        bar.update(1)
    bar.close()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on a host:port nobody listens at (ray.init would retry for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return  # 'auto' and other forms are Ray's to resolve
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"--address {address!r}: no Ray cluster answers there ({exc.strerror or exc})") from None
