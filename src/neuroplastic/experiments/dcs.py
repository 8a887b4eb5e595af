"""DCS-GCS (Bruske & Sommer 1995) classification against a plain MLP.

Method: features standardised with the training split's mean and deviation. DCS-GCS grows
from two units: every signal moves the best unit and its lateral neighbours, refreshes the
best-second link (competitive Hebbian learning), and trains the linear outputs over the
Gaussian RBF units by the delta rule; every λ signals one unit is inserted where the output
error (the resource) is largest, up to `max_nodes` (and at most `max_node_share` of the
training samples). The MLP is GraphNet.mlp with one hidden layer trained by Adam on the same
split. Test accuracy over seeds (each seed: its own split and initialisation).
`--data FILE.npz` (X, y) replaces the data sets.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..core.validate import check_choice, check_device, check_int, check_number
from ..errors import ConfigError
from ..som import DCSGCS
from . import register
from .options import string_list, with_overrides

DEFAULT = {"data": ["wine", "digits"], "variants": ["dcs-gcs", "mlp"], "seeds": 5, "test_fraction": 0.25,
           # DCS-GCS
           "max_nodes": 200, "max_node_share": 0.3, "epochs": 30, "lam": 100, "eta": 0.05, "width_scale": 1.0,
           "eps_b": 0.05, "eps_n": 0.005, "alpha": 0.9992, "theta": 0.001, "beta": 0.95,
           # MLP
           "hidden": 64, "mlp_epochs": 100, "lr": 1e-3, "batch_size": 32, "device": "cpu"}
QUICK = {"seeds": 1, "epochs": 3, "max_nodes": 40, "mlp_epochs": 5}
FULL = {"seeds": 10}
VARIANTS = ("dcs-gcs", "mlp")
BUILT_IN = ("wine", "digits")

OPTION_NOTES = {
    "data": "wine, digits, or FILE.npz (X, y); also --data",
    "variants": f"any of {', '.join(VARIANTS)}",
    "max_node_share": "DCS-GCS units at most this share of the training samples",
    "epochs": "DCS-GCS passes over the training data", "lam": "λ: signals between insertions",
    "eta": "delta-rule step of the outputs", "width_scale": "RBF width / mean distance to the neighbours",
    "alpha": "link decay per signal", "theta": "links weaker than this vanish", "beta": "resource decay per λ",
    "hidden": "MLP hidden units (one layer)", "mlp_epochs": "MLP epochs of Adam", "device": "cpu or cuda",
}


def load_split(spec: str, seed: int, test_fraction: float):
    """(x_train, y_train, x_test, y_test), standardised with the training split's statistics."""
    from sklearn.model_selection import train_test_split
    if spec == "wine":
        from sklearn.datasets import load_wine
        x, y = load_wine(return_X_y=True)
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    else:
        from ..tasks.datasets import load_data
        data = load_data(spec, seed=seed)
        x_tr, y_tr, x_te, y_te = data.x_train, data.y_train, data.x_test, data.y_test
    mean, std = x_tr.mean(0), x_tr.std(0)
    std = np.where(std > 0, std, 1.0)
    return ((x_tr - mean) / std).astype(np.float32), y_tr, ((x_te - mean) / std).astype(np.float32), y_te


class DCSExperiment:
    name = "dcs"
    description = "DCS-GCS (RBF units on a DCS graph) classification on wine and digits vs a plain MLP"
    inputs = "data"
    presets = {"--quick": QUICK, "--full": FULL}

    def config(self, quick: bool, full: bool, overrides: dict) -> dict:
        config = with_overrides("dcs", DEFAULT, QUICK if quick else FULL if full else {}, overrides)
        for key in ("data", "variants"):
            config[key] = string_list(config, key)
        for variant in config["variants"]:
            check_choice(variant, "variant", VARIANTS)
        for key, minimum in (("seeds", 1), ("max_nodes", 2), ("epochs", 1), ("lam", 1), ("hidden", 1),
                             ("mlp_epochs", 1), ("batch_size", 1)):
            config[key] = check_int(config[key], key, minimum)
        for key in ("max_node_share", "eps_b", "eps_n", "alpha", "beta"):
            config[key] = check_number(config[key], key, maximum=1, above=0)
        config["test_fraction"] = check_number(config["test_fraction"], "test_fraction", above=0, below=1)
        config["theta"] = check_number(config["theta"], "theta", above=0, below=1)
        for key in ("eta", "width_scale", "lr"):
            config[key] = check_number(config[key], key, above=0)
        config["device"] = check_device(config["device"])
        for spec in config["data"]:
            if spec not in BUILT_IN and not spec.endswith(".npz"):
                raise ConfigError(f"data {spec!r} is neither a built-in set ({', '.join(BUILT_IN)}) nor a FILE.npz")
            if spec.endswith(".npz"):
                load_split(spec, 0, config["test_fraction"])  # a bad file fails here, before any job
        return config

    def jobs(self, config: dict) -> list[dict]:
        return [{"task": data, "variant": variant, "seed": seed}
                for seed in range(config["seeds"]) for data in config["data"] for variant in config["variants"]]

    def run_job(self, job: dict, config: dict, out_dir: Path, progress: bool = False) -> dict:
        x_tr, y_tr, x_te, y_te = load_split(job["task"], job["seed"], config["test_fraction"])
        if len(np.unique(y_tr)) < 2:  # the split can leave a class with one sample on the test side only
            raise ConfigError(f"{job['task']}: the training split of seed {job['seed']} holds one class only; "
                              "give more samples of each class")
        torch.manual_seed(job["seed"])
        started = time.perf_counter()
        if job["variant"] == "dcs-gcs":
            metrics = self._dcs_gcs(x_tr, y_tr, x_te, y_te, config, job["seed"], progress)
        else:
            metrics = self._mlp(x_tr, y_tr, x_te, y_te, config, job["seed"], progress)
        metrics["train_s"] = time.perf_counter() - started
        metrics["chance"] = float(np.bincount(y_te).max() / len(y_te))  # the majority class's share
        return metrics

    def _dcs_gcs(self, x_tr, y_tr, x_te, y_te, config, seed, progress) -> dict:
        nodes = max(2, min(config["max_nodes"], int(config["max_node_share"] * len(x_tr))))
        model = DCSGCS(x_tr.shape[1], nodes, seed, device=config["device"],
                       **{k: config[k] for k in ("lam", "eta", "width_scale", "eps_b", "eps_n", "alpha", "theta",
                                                 "beta")})
        model.fit(x_tr, y_tr, epochs=config["epochs"], x_val=x_te, y_val=y_te, progress=progress)
        n_out = model.n_out
        return {"test_accuracy": model.score(x_te, y_te), "train_accuracy": model.score(x_tr, y_tr),
                "n_hidden": model.n_nodes, "n_edges": model.n_edges,
                "n_params": model.n_nodes * (x_tr.shape[1] + 1 + n_out),  # centres, widths, output weights
                "history": [{"step": i + 1, "n_nodes": h["n_nodes"], "test_accuracy": h["val_accuracy"]}
                            for i, h in enumerate(model.history)]}

    def _mlp(self, x_tr, y_tr, x_te, y_te, config, seed, progress) -> dict:
        from ..core.graph import GraphNet
        from ..train.supervised import evaluate, train_supervised
        n_classes = int(max(y_tr.max(), y_te.max())) + 1
        net = GraphNet.mlp(x_tr.shape[1], [config["hidden"]], n_classes, activation="relu", seed=seed)
        history = train_supervised(net, x_tr, y_tr, epochs=config["mlp_epochs"], lr=config["lr"],
                                   batch_size=config["batch_size"], seed=seed, x_val=x_te, y_val=y_te,
                                   progress=progress)
        return {"test_accuracy": evaluate(net, x_te, y_te), "train_accuracy": evaluate(net, x_tr, y_tr),
                "n_hidden": net.n_hidden, "n_edges": net.n_edges, "n_params": net.n_params,
                "history": [{"step": h["epoch"], "n_nodes": net.n_hidden, "test_accuracy": h["val"]}
                            for h in history]}

    def report(self, results: dict, out_dir) -> None:
        from .dcs_report import write_report
        write_report(results, Path(out_dir), variant_order=list(VARIANTS))

    def option_groups(self) -> list[tuple[str, dict, dict]]:
        return [("experiment", DEFAULT, OPTION_NOTES)]


register(DCSExperiment())
