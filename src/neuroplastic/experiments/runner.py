"""Run an experiment's jobs in-process or on Ray, resumably, and write results.json.

Each finished job is written at once to DIR/rows/<job>.json (atomically), so an interrupted
run loses at most the jobs in flight: running the same command again skips finished jobs.
A file of the folder that cannot be read (a row, config.json, a checkpoint) is named in one
line and its job runs again. results.json and the report cover every finished row of the
folder's settings, also rows of seeds, tasks or variants that this command did not ask for.
Jobs are seeded, and every job runs with one torch thread, so the numbers are the same
in-process and on any number of Ray workers. A job that reads another's row (an experiment's
`after(job)`) is listed after it, and on Ray starts only once that job is done.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import platform
import shutil
import socket
import sys
import time
from pathlib import Path

import torch

from ..core.checkpoint import atomic_write_bytes, make_output_dir
from ..errors import CheckpointError, ConfigError, RunError
from . import get_experiment
from .progress import RunBar, job_progress, progress_board

# Keys that only choose which jobs run; every other setting changes what a job computes.
_JOB_KEYS = ("envs", "variants", "seeds")
EXPERIMENT_KEY = "_experiment"  # config.json names the experiment it holds; not one of its settings
MAX_SEEDS = 10_000  # far beyond any study, and small enough that listing the jobs is instant
DIGEST_KEY = "digest"  # a row's checksum of its own content (rows written before it have none)
LOCK = ".lock"  # DIR/.lock: held by the run writing DIR (folder_lock)
REFRESH_S = 0.5  # how often the driver reads the Ray workers' progress


def job_name(job: dict) -> str:
    """A job's file stem; '/' and the ':' of gymnasium's `module:EnvId` ids become '_'."""
    return f"{job['task']}__{job['variant']}__seed{job['seed']}".replace("/", "_").replace(":", "_")


def _execute(name: str, job: dict, config: dict, out_dir: str, progress: bool = False, board=None,
             *_after) -> dict:
    """Run one job and write its row (also the body of the Ray task). Its trainers' bars report
    to `board` (a Ray actor) when given, else draw in the terminal when `progress`. `_after`
    is unused: on Ray it holds the futures of the jobs this one reads, which Ray resolves,
    so the task starts once their rows are written."""
    torch.set_num_threads(1)
    experiment = get_experiment(name)
    report = None if board is None else (lambda f: board.report.remote(job_name(job), f))
    started = time.perf_counter()
    with job_progress(report):
        try:
            metrics = experiment.run_job(job, config, Path(out_dir), progress=progress or board is not None)
        except RunError as exc:  # one job's run ended, not a bad setting: say which
            raise type(exc)(f"job {job_name(job)}: {exc}; the finished jobs' rows are kept") from None
    metrics.setdefault("wall_s", time.perf_counter() - started)
    row = json.loads(json.dumps({"task": job["task"], "variant": job["variant"], "seed": job["seed"],
                                 "metrics": metrics}))  # as it reads back: tuples are lists, keys strings
    row[DIGEST_KEY] = row_digest(row)
    atomic_write_bytes(Path(out_dir) / "rows" / f"{job_name(row)}.json", json.dumps(row).encode())
    return row


def row_digest(row: dict) -> str:
    """The SHA-256 of a row's content (its digest left out), which its job writes beside it: a
    row edited afterwards, whose numbers a report would then trust or fail on, no longer matches."""
    content = {k: v for k, v in row.items() if k != DIGEST_KEY}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def waits_for(experiment, jobs: list[dict]) -> dict[str, list[str]]:
    """For each job, the jobs among `jobs` whose rows it reads (the experiment's optional
    `after(job)`), by name."""
    after = getattr(experiment, "after", None)
    names = {job_name(j) for j in jobs}
    return {job_name(j): [n for n in map(job_name, after(j) if after else []) if n in names] for j in jobs}


def environment() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "machine": f"{platform.system()} {platform.machine()}", "cpus": torch.get_num_threads()}


def say(text: str) -> None:
    """One line for the user about the run folder (stderr, so stdout keeps the result)."""
    print(f"neuroplastic: {text}", file=sys.stderr)


def run_experiment(name: str, out_dir, *, quick: bool = False, full: bool = False,
                   overrides: dict | None = None, workers: int = 1, address: str | None = None,
                   progress: bool = True, command: str | None = None) -> dict:
    experiment = get_experiment(name)
    if quick and full:
        raise ConfigError("--quick and --full exclude each other")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers={workers!r} must be an integer >= 1")
    config = experiment.config(quick=quick, full=full, overrides=overrides or {})
    if config.get("seeds", 0) > MAX_SEEDS:  # before jobs() lists them all
        raise ConfigError(f"seeds={config['seeds']} is more than {MAX_SEEDS:,} seeds; run fewer (a folder's "
                          "later runs can add seeds)")
    out = Path(out_dir)
    fresh = not out.exists()
    make_output_dir(out, "--out")
    with folder_lock(out):
        if not fresh:
            saved = _saved_records(out)
            _check_same_experiment(saved, out, name)
            _check_same_settings(saved, out, config, getattr(experiment, "settings_before", {}))
        try:
            _prepare_folder(out, config, name)
            return _run_jobs(experiment, name, config, out, workers, address, progress, command)
        except BaseException as exc:
            files = {p for p in out.rglob("*") if p.is_file()}
            if fresh and files <= {out / "config.json", out / LOCK}:  # failed before any work was saved
                shutil.rmtree(out)
            if isinstance(exc, OSError) and _inside(exc.filename, out):  # e.g. DIR/nets is a file
                raise ConfigError(f"--out {str(out)!r}: cannot write {str(exc.filename)!r} "
                                  f"({exc.strerror or exc}); move it aside or use another --out") from None
            raise


def _inside(path, folder: Path) -> bool:
    try:
        return path is not None and Path(path).resolve().is_relative_to(folder.resolve())
    except (OSError, TypeError, ValueError):
        return False


@contextlib.contextmanager
def folder_lock(out: Path):
    """One run at a time in a folder: a second one would rewrite config.json and the rows of
    the first under it. An advisory lock on DIR/.lock, released when the process ends however
    it ends (so a killed run leaves no stale lock); where fcntl is missing, no lock."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        handle = open(out / LOCK, "a")  # noqa: SIM115 (held open for the whole run)
    except OSError as exc:
        raise ConfigError(f"--out {str(out)!r}: cannot write there ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"--out {str(out)!r}: another neuroplastic run is writing there; wait for it to "
                              "end or use another --out") from None
        yield
    finally:
        handle.close()


def _run_jobs(experiment, name, config, out, workers, address, progress, command) -> dict:
    rows_dir = out / "rows"
    jobs = experiment.jobs(config)
    pending = [j for j in jobs if not _finished(experiment, j, config, out)]
    if progress and len(pending) < len(jobs):
        print(f"resuming: {len(jobs) - len(pending)} of {len(jobs)} jobs already done in {out}")

    if workers > 1 or address:
        _run_on_ray(experiment, pending, config, out, workers, address, progress)
    else:
        bar = RunBar(name, len(pending), progress)
        try:
            for job in pending:  # in the experiment's order, which lists a job after those it reads
                report = (lambda f, key=job_name(job): bar.fraction(key, f)) if progress else None
                with job_progress(report):
                    _execute(name, job, config, str(out), progress)
                bar.finished(job_name(job))
        except BaseException:
            bar.close(keep=False)
            raise
        bar.close()

    rows, covered = _all_finished_rows(experiment, config, out, jobs)
    if len(rows) > len(jobs):
        extra = [r for r in rows if job_name(r) not in {job_name(j) for j in jobs}]
        say(f"results.json and report.md also cover {len(extra)} finished row(s) in {rows_dir} that this "
            f"command's {len(jobs)} jobs do not: {_describe(extra, config)}")
    results = {"experiment": name, "config": covered, "environment": environment(), "rows": rows}
    if command:
        results["command"] = command
    atomic_write_bytes(out / "results.json", json.dumps(results, indent=1).encode())
    write_report(experiment, results, out)
    return results


def _prepare_folder(out: Path, config: dict, name: str) -> None:
    """DIR/rows and DIR/config.json in DIR (made by run_experiment, before it took DIR's lock),
    or one ConfigError saying why DIR cannot hold a run."""
    rows = out / "rows"
    if rows.exists() and not rows.is_dir():
        raise ConfigError(f"--out {str(out)!r}: {str(rows)!r} is a file, not the folder of finished rows")
    try:
        rows.mkdir(exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {str(out)!r}: cannot write there ({exc.strerror or exc})") from None
    try:
        atomic_write_bytes(out / "config.json", json.dumps({EXPERIMENT_KEY: name, **config}, indent=1).encode())
    except CheckpointError as exc:
        raise ConfigError(f"--out {str(out)!r}: {exc}") from None


def write_report(experiment, results: dict, out: Path) -> None:
    """The experiment's report of `results`; rows that lack what it reads (a row or results.json
    edited by hand, or from another version) are one ConfigError, not a traceback."""
    try:
        experiment.report(results, out)
    except CheckpointError as exc:  # a report file or plot that cannot be written: not the rows' fault
        raise ConfigError(f"--out {str(out)!r}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ConfigError(f"{out}: the results lack what the {results['experiment']} report needs "
                          f"({type(exc).__name__}: {exc}); a row may have been edited or come from "
                          "another version") from None


def read_row(path: Path, job: dict | None = None) -> dict | None:
    """The row in `path`, or None (with one line saying so) when it cannot be read."""
    try:
        row = json.loads(path.read_text())
        ok = isinstance(row, dict) and {"task", "variant", "seed"} <= set(row) and _metrics_readable(row.get("metrics"))
        if ok and job is not None:
            ok = all(row[k] == job[k] for k in ("task", "variant", "seed"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        ok = False
    if ok and DIGEST_KEY in row and row[DIGEST_KEY] != row_digest(row):
        say(f"{path} is damaged (it was changed after its job wrote it); running that job again")
        path.unlink(missing_ok=True)
        return None
    if not ok:
        say(f"{path} is damaged (not a row of this job); running that job again")
        path.unlink(missing_ok=True)
        return None
    return row


# metrics that reports and later jobs compute with: each, where a row has it, a finite number
NUMERIC_METRICS = {"return_mean": None, "best_fitness": None, "n_hidden": 0, "n_edges": 0, "generations": 0,
                   "evaluations": 0}  # name: the least value (None: any)


def _metrics_readable(metrics) -> bool:
    """A row's metrics as a job writes them: a non-empty dict whose common numbers are numbers
    (a hand-edited "abc" or null would otherwise reach results.json and fail the report)."""
    if not isinstance(metrics, dict) or not metrics:
        return False
    for key, least in NUMERIC_METRICS.items():
        value = metrics.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if least is not None and value < least:
            return False
    return True


def _finished(experiment, job: dict, config: dict, out: Path) -> bool:
    """Whether the job's row and its other files are all there and readable. A damaged one is
    named and removed, and the job counts as not done (a damaged resume checkpoint just means
    the job starts from its first step)."""
    row_path = out / "rows" / f"{job_name(job)}.json"
    files = getattr(experiment, "job_files", lambda j, c, o: [])(job, config, out)
    for path in (row_path, *files):
        if path.is_dir():  # not a damaged file: something in the way, which the user must move
            raise ConfigError(f"--out {str(out)!r}: {str(path)!r} is a folder where job {job_name(job)} keeps a "
                              "file; move it aside or use another --out")
    done = row_path.exists() and read_row(row_path, job) is not None
    for path in files:
        if path.exists() and not _readable_checkpoint(path):
            say(f"{path} is damaged; job {job_name(job)} runs again from its first step")
            path.unlink()
            if done:
                row_path.unlink()
                done = False
    return done


def _readable_checkpoint(path: Path) -> bool:
    from ..core.checkpoint import load
    try:
        load(path)
    except CheckpointError:
        return False
    return True


def _all_finished_rows(experiment, config: dict, out: Path, jobs: list[dict]) -> tuple[list[dict], dict]:
    """Every readable row in DIR/rows (all computed with these settings: the folder refuses
    others), in the experiment's job order, and the config widened to cover them."""
    rows = {}
    for path in sorted((out / "rows").glob("*.json")):
        row = read_row(path)
        if row is not None and path.stem != job_name(row):  # a copy, or a file renamed by hand
            say(f"{path} holds the row of {job_name(row)}, not of its name; left out of the results")
        elif row is not None:
            rows[job_name(row)] = row
    covered = dict(config)
    if "seeds" in config:
        covered["seeds"] = max([config["seeds"]] + [r["seed"] + 1 for r in rows.values()])
    for key, field in (("envs", "task"), ("variants", "variant")):
        if isinstance(config.get(key), list):
            covered[key] = list(dict.fromkeys(config[key] + [r[field] for r in rows.values()]))
    ordered = [rows.pop(job_name(j)) for j in experiment.jobs(covered) if job_name(j) in rows]
    return ordered + [rows[k] for k in sorted(rows)], covered


def _describe(rows: list[dict], config: dict) -> str:
    parts = []
    for label, field, asked in (("seeds", "seed", range(config.get("seeds", 0))),
                                ("tasks", "task", config.get("envs") or []),
                                ("variants", "variant", config.get("variants") or [])):
        values = sorted({r[field] for r in rows} - set(asked), key=str)
        if values:
            parts.append(f"{label} {', '.join(map(str, values))}")
    return "; ".join(parts) or "other jobs"


def _saved_records(out: Path) -> dict:
    """DIR's config.json and results.json, each read once: a file name -> its parsed contents,
    or None where it is not a readable JSON object (absent files are left out)."""
    records = {}
    for name in ("config.json", "results.json"):
        path = out / name
        if path.is_file():
            try:
                content = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                content = None
            records[name] = content if isinstance(content, dict) else None
    return records


def _check_same_experiment(saved: dict, out: Path, name: str) -> None:
    """A folder whose config.json or results.json is another experiment's is refused by that
    name (its settings would all differ, and the settings message would not say why)."""
    for file, key in (("config.json", EXPERIMENT_KEY), ("results.json", "experiment")):
        other = (saved.get(file) or {}).get(key)
        if isinstance(other, str) and other != name:
            raise ConfigError(f"--out {str(out)!r} holds a {other} run, not {name}; use another --out")


def _check_same_settings(records: dict, out: Path, config: dict, settings_before: dict | None = None) -> None:
    """Finished rows are reused on a rerun only if they were computed with the same settings
    (`records`: what `_saved_records` read of DIR). `settings_before`: for options added after a
    folder may have been written, the value that means what the code did before the option
    existed (a saved config without the key has it)."""
    saved, damaged = None, None
    for name in ("config.json", "results.json"):  # results.json: runs written before config.json
        if name not in records:
            continue
        content = records[name]
        if content is not None:
            content = content.get("config") if name == "results.json" else \
                {k: v for k, v in content.items() if k != EXPERIMENT_KEY}
        if isinstance(content, dict):
            saved = content
            break
        if name == "config.json":
            damaged = out / name  # said below, once it is certain that this run goes on and rewrites it
    rows = [p for p in (out / "rows").glob("*.json") if p.is_file()]
    # a job's resume checkpoints (DIR/partial) hold work done under the saved settings as well
    partial = [p for p in (out / "partial").glob("*.ckpt") if p.is_file()]
    if saved is None:
        if damaged:
            say(f"{damaged} is damaged; it is written again from this command's settings")
        if rows:  # nothing says which settings the rows were computed with: they cannot be reused
            say(f"no readable settings in {out} for its {len(rows)} finished rows; running those jobs again")
            for path in rows:
                path.unlink()
        if partial:
            say(f"no readable settings in {out} for its {len(partial)} unfinished jobs; they start again")
            for path in partial:
                path.unlink()
        return
    current = json.loads(json.dumps(config))
    saved = {**{k: v for k, v in (settings_before or {}).items() if k in current}, **saved}
    changed = [k for k in sorted(set(saved) | set(current))
               if k not in _JOB_KEYS and saved.get(k) != current.get(k)]
    if changed and (rows or partial):
        diff = ", ".join(_change(k, saved.get(k), current.get(k)) for k in changed)
        held = [str(out / d) for d, files in (("rows", rows), ("partial", partial)) if files]
        raise ConfigError(f"{out} holds {'results' if rows else 'unfinished jobs'} computed with other settings "
                          f"({diff}); use another --out, or delete {' and '.join(held)} to recompute")
    if damaged:
        say(f"{damaged} is damaged; it is written again from this command's settings (read from results.json)")


def _change(key: str, before, after) -> str:
    """One changed setting for the refusal line; a file's checksum as what it stands for."""
    if key.endswith("_sha256"):
        file = key[:-len("_sha256")]
        short = [v[:12] if isinstance(v, str) else repr(v) for v in (before, after)]
        return f"the contents of the {file} file (sha256 {short[0]} -> {short[1]})"
    return f"{key}: {before!r} -> {after!r}"


def _run_on_ray(experiment, jobs, config, out, workers, address, progress) -> None:
    name = experiment.name
    try:
        import ray
    except ImportError:
        raise ConfigError("--workers > 1 needs Ray: pip install 'neuroplastic[ray]'") from None
    if address and jobs:
        _check_reachable(address)
    bar = RunBar(f"{name} (ray)", len(jobs), progress)
    try:
        if jobs:
            bar.note("starting Ray")
            _init_ray(ray, workers, address)
        board = progress_board() if progress and jobs else None
        remote = ray.remote(num_cpus=1)(_execute)
        waits, submitted = waits_for(experiment, jobs), {}
        for job in jobs:  # a job's prerequisites come before it, so their futures exist
            after = [submitted[n] for n in waits[job_name(job)]]
            submitted[job_name(job)] = remote.remote(name, job, config, str(out), False, board, *after)
        futures = {future: key for key, future in submitted.items()}
        while futures:
            done, _ = ray.wait(list(futures), num_returns=1, timeout=REFRESH_S)
            for future in done:
                ray.get(future)  # raises the job's error here
                bar.finished(futures.pop(future))
            if board is not None:
                for key, fraction in ray.get(board.snapshot.remote()).items():
                    if key in futures.values():
                        bar.fraction(key, fraction)
    except BaseException:
        bar.close(keep=False)
        raise
    bar.close()


def _init_ray(ray, workers: int, address: str | None) -> None:
    if ray.is_initialized():
        return
    import logging
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:  # something answers, but not Ray
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"--address {address!r}: no Ray cluster there ({reason})") from None
    else:
        ray.init(num_cpus=workers, include_dashboard=False, **quiet)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on a host:port nobody listens at (ray.init would retry for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return  # 'auto' and other forms are Ray's to resolve
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"--address {address!r}: no Ray cluster answers there ({exc.strerror or exc})") from None
