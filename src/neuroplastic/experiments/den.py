"""Dynamically Expandable Networks (Yoon et al., ICLR 2018) against fine-tuning, EWC and a network
per task, on task sequences from sklearn digits (or MNIST IDX files, `--data DIR`, or the user's
own `--data FILE.npz` with arrays X and y).

Sequences: *permuted* (`permuted_tasks` tasks, 10 by default; task 0 the original pixels, each
later task a fixed random permutation of them; all classes in every task) and *split* (the
class pairs 0/1, 2/3, ...: 5 tasks of two classes on digits; a data set of its own needs an
even number of classes, at least 4). Every task has its own output head
(task-incremental, as the authors' code), and the learner sees one task's training data at a
time. After each task every task seen so far is tested; from that accuracy matrix a_{t,s}
(after task t, on task s): average accuracy after the sequence (mean_s a_{T-1,s}) and
forgetting (mean over s < T-1 of max_{t<T-1} a_{t,s} - a_{T-1,s}). Size: the learner's
parameters after the sequence (DEN: live edges and the biases of live units and heads).
Features are standardised with the training split's statistics.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..core.validate import check_int, check_number
from ..errors import ConfigError
from . import register
from .options import layer_widths, string_list, with_overrides

DEFAULT = {"data": "digits", "sequences": ["permuted", "split"], "variants": ["den", "finetune", "ewc", "per-task"],
           "seeds": 3, "hidden": [100, 50], "permuted_tasks": 10, "limit": 0,
           # training, shared by every learner
           "epochs": 10, "lr": 1e-3, "batch_size": 64,
           # DEN (the authors' permuted-MNIST settings; see lifelong/den.py)
           "k": 10, "loss_threshold": 0.01, "drift_threshold": 0.05, "l1": 1e-5, "group_lasso": 1e-3, "l2": 1e-4,
           "drift_penalty": 0.5, "head_epochs": 3,
           # EWC
           "ewc_lambda": 100.0, "fisher_samples": 500,
           "threads": 1}
QUICK = {"seeds": 1, "permuted_tasks": 3, "epochs": 2, "head_epochs": 1, "sequences": ["permuted", "split"]}
FULL = {"seeds": 5}
SEQUENCES = ("permuted", "split")
VARIANTS = ("den", "finetune", "ewc", "per-task")
DEN_KEYS = ("k", "loss_threshold", "drift_threshold", "l1", "group_lasso", "l2", "drift_penalty", "head_epochs",
            "epochs", "lr", "batch_size")

OPTION_NOTES = {
    "data": "digits, a FILE.npz (X, y) or an MNIST IDX directory (also --data)",
    "sequences": "permuted (permuted_tasks tasks, 10 classes each) and/or split (5 tasks of 2 classes)",
    "variants": "den, finetune, ewc, per-task (a separate net per task)",
    "hidden": "hidden widths of the starting net (every learner); the authors used 312,128 on MNIST",
    "permuted_tasks": "tasks in the permuted sequence (>= 2)",
    "limit": "at most this many training samples in all, cut before the tasks are built (0: all)",
    "epochs": "epochs of each training phase (DEN's phases and every baseline's task)",
    "k": "units DEN adds to each hidden layer per expansion (and most units split per task)",
    "loss_threshold": "tau: DEN expands when its training loss after selective retraining is above it",
    "drift_threshold": "sigma: DEN duplicates a unit whose incoming weights moved further (L2)",
    "l1": "proximal L1 step per optimizer step", "group_lasso": "proximal group-lasso step per optimizer step",
    "l2": "L2 penalty of selective retraining", "drift_penalty": "lambda of Eq. 6 (pull towards W^{t-1})",
    "head_epochs": "epochs fitting a new head alone", "ewc_lambda": "EWC penalty strength",
    "fisher_samples": "samples for EWC's diagonal Fisher", "threads": "torch CPU threads",
}


def base_split(spec: str, seed: int, limit: int):
    """(x_train, y_train, x_test, y_test), standardised on the training part: digits split
    75% / 25% (stratified, per seed), MNIST IDX into its own train and t10k files."""
    from ..tasks.datasets import load_data
    data = load_data(spec, seed=seed)
    x_tr, x_te, y_tr, y_te = data.x_train, data.x_test, data.y_train, data.y_test
    if limit:
        x_tr, y_tr = x_tr[:limit], y_tr[:limit]
    mean, std = x_tr.mean(0), x_tr.std(0)
    std = np.where(std > 0, std, 1.0)
    return ((x_tr - mean) / std).astype(np.float32), y_tr, ((x_te - mean) / std).astype(np.float32), y_te


def n_classes_of(y_train, y_test) -> int:
    """Class ids run 0..n-1: one more than the largest label in either split."""
    return int(max(y_train.max(), y_test.max())) + 1


def task_sequence(kind: str, data, n_permuted: int, seed: int) -> tuple[list, int]:
    """[(x_train, y_train, x_test, y_test) per task], classes per task."""
    x_tr, y_tr, x_te, y_te = data
    if kind == "permuted":
        rng = np.random.default_rng(10_000 + seed)
        perms = [np.arange(x_tr.shape[1])] + [rng.permutation(x_tr.shape[1]) for _ in range(n_permuted - 1)]
        return [(x_tr[:, p], y_tr, x_te[:, p], y_te) for p in perms], n_classes_of(y_tr, y_te)
    tasks = []
    for a in range(0, n_classes_of(y_tr, y_te), 2):
        tr, te = np.isin(y_tr, (a, a + 1)), np.isin(y_te, (a, a + 1))
        tasks.append((x_tr[tr], (y_tr[tr] - a).astype(np.int64), x_te[te], (y_te[te] - a).astype(np.int64)))
    return tasks, 2


def make_learner(variant: str, n_in: int, config: dict, n_classes: int, n_tasks: int, seed: int):
    from ..lifelong import DEN, EWC, FineTune, NetPerTask
    common = {"seed": seed, "lr": config["lr"], "batch_size": config["batch_size"], "epochs": config["epochs"]}
    if variant == "den":
        return DEN(n_in, config["hidden"], n_classes, n_tasks, seed=seed, **{k: config[k] for k in DEN_KEYS})
    if variant == "ewc":
        return EWC(n_in, config["hidden"], n_classes, n_tasks, lam=config["ewc_lambda"],
                   fisher_samples=config["fisher_samples"], **common)
    cls = FineTune if variant == "finetune" else NetPerTask
    return cls(n_in, config["hidden"], n_classes, n_tasks, **common)


def forgetting(acc: np.ndarray) -> float:
    """Mean over the tasks before the last of (best accuracy before the end - final accuracy)."""
    last = len(acc) - 1
    if last == 0:
        return 0.0
    return float(np.mean([acc[s:last, s].max() - acc[last, s] for s in range(last)]))


class DENExperiment:
    name = "den"
    description = "Dynamically Expandable Networks vs fine-tuning, EWC and a net per task: permuted and split digits"
    inputs = "data"
    presets = {"--quick": QUICK, "--full": FULL}

    def config(self, quick: bool, full: bool, overrides: dict) -> dict:
        from ..lifelong import DENConfig
        config = with_overrides("den", DEFAULT, QUICK if quick else FULL if full else {}, overrides)
        for key, allowed in (("sequences", SEQUENCES), ("variants", VARIANTS)):
            config[key] = string_list(config, key)
            for v in config[key]:
                if v not in allowed:
                    raise ConfigError(f"{key[:-1]}={v!r} is not supported; expected one of {list(allowed)}")
        if isinstance(config["data"], list):
            if len(config["data"]) != 1:
                raise ConfigError(f"data={config['data']!r}: the den experiment takes one data set")
            config["data"] = config["data"][0]
        config["hidden"] = layer_widths(config, "hidden", "100,50")
        config["permuted_tasks"] = check_int(config["permuted_tasks"], "permuted_tasks", 1)
        if config["permuted_tasks"] < 2:
            raise ConfigError(f"permuted_tasks={config['permuted_tasks']}: a task sequence needs at least 2 tasks")
        for key, minimum in (("seeds", 1), ("limit", 0), ("threads", 1), ("fisher_samples", 1)):
            config[key] = check_int(config[key], key, minimum)
        config["ewc_lambda"] = check_number(config["ewc_lambda"], "ewc_lambda", minimum=0)
        DENConfig(**{k: config[k] for k in DEN_KEYS})   # one line naming a bad threshold, rate or count
        if config["data"] != "digits":
            path = Path(config["data"])
            if not (path.is_dir() or (path.suffix == ".npz" and path.is_file())):
                raise ConfigError(f"data {config['data']!r} is neither digits, an .npz file nor an MNIST IDX directory")
            _, y_tr, _, y_te = base_split(config["data"], 0, 0)   # a bad file fails here
            n_classes = n_classes_of(y_tr, y_te)
            if "split" in config["sequences"] and (n_classes % 2 or n_classes < 4):
                raise ConfigError(f"sequence 'split' pairs the classes 0/1, 2/3, ...: it needs an even number of "
                                  f"classes, at least 4, and {config['data']!r} has {n_classes}; "
                                  "use --set sequences=permuted")
        return config

    def jobs(self, config: dict) -> list[dict]:
        return [{"task": s, "variant": v, "seed": seed} for s in config["sequences"] for seed in range(config["seeds"])
                for v in config["variants"]]

    def run_job(self, job: dict, config: dict, out_dir: Path, progress: bool = False) -> dict:
        torch.set_num_threads(config["threads"])
        data = base_split(config["data"], job["seed"], config["limit"])
        tasks, n_classes = task_sequence(job["task"], data, config["permuted_tasks"], job["seed"])
        empty = [t for t, task in enumerate(tasks) if len(task[1]) < 2]
        if empty:
            fix = "raise limit or set it to 0" if config["limit"] else "the data set has too few rows of those classes"
            raise ConfigError(f"task(s) {empty} get fewer than 2 training samples from the {len(data[1])} "
                              f"training rows (limit={config['limit']}); {fix}")
        learner = make_learner(job["variant"], data[0].shape[1], config, n_classes, len(tasks), job["seed"])
        acc = np.full((len(tasks), len(tasks)), np.nan)
        sizes, started = [], time.perf_counter()
        for t, (x_tr, y_tr, _, _) in enumerate(tasks):
            learner.learn(t, x_tr, y_tr)
            for s in range(t + 1):
                acc[t, s] = learner.accuracy(tasks[s][2], tasks[s][3], s)
            sizes.append(learner.n_params)
        metrics = {"test_accuracy": float(acc[-1].mean()), "forgetting": forgetting(acc),
                   "n_params": learner.n_params, "acc_matrix": [[None if np.isnan(v) else float(v) for v in r]
                                                               for r in acc],
                   "params_per_task": sizes, "n_tasks": len(tasks), "wall_s": time.perf_counter() - started,
                   "just_learnt_accuracy": float(np.mean(np.diag(acc)))}
        if job["variant"] == "den":
            metrics.update(units=learner.units_per_layer(), n_edges=learner.net.n_edges,
                           expansions=sum(h["expanded"] for h in learner.history),
                           splits=sum(h["split"] for h in learner.history),
                           history=[{k: v for k, v in h.items()} for h in learner.history])
        return metrics

    def report(self, results: dict, out_dir) -> None:
        from .den_report import write_report
        write_report(results, Path(out_dir))

    def option_groups(self) -> list[tuple[str, dict, dict]]:
        return [("experiment", DEFAULT, OPTION_NOTES)]


register(DENExperiment())
