"""GNG (Fritzke 1995) and unsupervised DCS (Bruske & Sommer 1995) on 2-D data sets.

Method, as in the paper: start from two units at random data points and present shuffled
signals for `epochs` passes; a unit is inserted every λ signals until `max_nodes`. The
variants are the same GNG run sequentially (the paper's algorithm, one signal at a time) and
batched (signals in minibatches against a frozen graph), and DCS with the same growth period.
Measured on held-out points of the same distribution: quantisation error (mean distance to
the nearest unit), topographic error (share of points whose two nearest units share no edge),
and the graph's units, edges, components and independent cycles; over time, units, edges and
the quantisation error on the training data. `--data FILE.npz` (an array X) replaces the sets.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..core.validate import check_choice, check_device, check_int, check_number
from ..errors import ConfigError
from ..som import DCS, GNG
from ..som.data import SHAPES, shape
from . import register
from .options import string_list, with_overrides

# Fritzke's parameters (NIPS 1995), the growth budget and the data.
DEFAULT = {"data": ["rings", "moons", "blobs", "holes"], "variants": ["gng-batched", "gng-sequential", "dcs"],
           "seeds": 3, "n_train": 2000, "n_test": 1000, "max_nodes": 100, "epochs": 20,
           "eps_b": 0.2, "eps_n": 0.006, "a_max": 50, "lam": 100, "alpha": 0.5, "d": 0.995,
           "batch_size": "auto", "log_every": 1000, "device": "cpu"}
QUICK = {"n_train": 500, "n_test": 300, "max_nodes": 30, "epochs": 8, "seeds": 1, "log_every": 500}
FULL = {"seeds": 5}
VARIANTS = ("gng-batched", "gng-sequential", "dcs")
DCS_THETA = 0.001

OPTION_NOTES = {
    "data": f"2-D sets among {', '.join(SHAPES)}, or FILE.npz with an (n, dim) array X; also --data",
    "variants": f"any of {', '.join(VARIANTS)}",
    "n_train": "training points per data set (test points are drawn from the same distribution)",
    "epochs": "passes over the training points",
    "eps_b": "GNG: step of the winner", "eps_n": "GNG: step of the winner's neighbours",
    "a_max": "GNG: edges older than this are removed", "lam": "λ: signals between insertions (GNG and DCS)",
    "alpha": "GNG: error reduction of q and f at an insertion", "d": "GNG: error decay per signal",
    "batch_size": "gng-batched: signals per batch, or 'auto' (as many as there are units, 16..1024)",
    "log_every": "signals between history rows", "device": "cpu or cuda",
}


def load_points(spec: str, n: int, seed: int) -> np.ndarray:
    """n points of a named 2-D set, or the rows of X in FILE.npz (all of them, shuffled)."""
    if spec in SHAPES:
        return shape(spec, n, seed)
    if not spec.endswith(".npz"):
        raise ConfigError(f"data {spec!r} is neither a 2-D set ({', '.join(SHAPES)}) nor a FILE.npz")
    from ..tasks.datasets import npz_arrays
    arrays = npz_arrays(spec, "an .npz file with an array X of shape (n, dim)")
    if "X" not in arrays:
        raise ConfigError(f"{spec}: no array X (arrays: {', '.join(arrays) or 'none'})")
    x = np.asarray(arrays["X"])
    if x.ndim != 2 or x.dtype.kind not in "iuf" or len(x) < 4 or not np.isfinite(x).all():
        raise ConfigError(f"{spec}: X must be a finite numeric (n, dim) array with n >= 4, got shape {x.shape}")
    return x[np.random.default_rng(seed).permutation(len(x))].astype(np.float32)


def split(spec: str, config: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) points drawn together, so that both come from one distribution."""
    x = load_points(spec, config["n_train"] + config["n_test"], seed)
    if spec in SHAPES:
        return x[:config["n_train"]], x[config["n_train"]:]
    cut = min(len(x) - 1, max(2, round(len(x) * config["n_train"] / (config["n_train"] + config["n_test"]))))
    return x[:cut], x[cut:]


class GNGExperiment:
    name = "gng"
    description = "Growing Neural Gas (sequential and batched) and DCS on 2-D data: QE, TE, graphs"
    inputs = "data"
    presets = {"--quick": QUICK, "--full": FULL}

    def config(self, quick: bool, full: bool, overrides: dict) -> dict:
        config = with_overrides("gng", DEFAULT, QUICK if quick else FULL if full else {}, overrides)
        for key in ("data", "variants"):
            config[key] = string_list(config, key)
        for variant in config["variants"]:
            check_choice(variant, "variant", VARIANTS)
        for key, minimum in (("seeds", 1), ("n_train", 2), ("n_test", 1), ("max_nodes", 2), ("epochs", 1),
                             ("a_max", 0), ("lam", 1), ("log_every", 1)):
            config[key] = check_int(config[key], key, minimum)
        for key in ("eps_b", "eps_n", "alpha", "d"):
            config[key] = check_number(config[key], key, maximum=1, above=0)
        if config["batch_size"] != "auto":
            config["batch_size"] = check_int(config["batch_size"], "batch_size", 1)
        config["device"] = check_device(config["device"])
        for spec in config["data"]:  # a bad data set fails here, before any job starts
            load_points(spec, 4, 0)
        return config

    def jobs(self, config: dict) -> list[dict]:
        return [{"task": data, "variant": variant, "seed": seed}
                for seed in range(config["seeds"]) for data in config["data"] for variant in config["variants"]]

    def model(self, variant: str, dim: int, config: dict, seed: int, n_train: int):
        if variant == "dcs":
            # DCS's own step sizes and resource decay, GNG's growth period, and the link decay of
            # the DCS demo's rule alpha = theta^(1 / samples per epoch): a link that is not
            # refreshed for one epoch (n_train training points) falls below theta.
            return DCS(dim, config["max_nodes"], seed, device=config["device"], lam=config["lam"],
                       alpha=DCS_THETA ** (1 / n_train), theta=DCS_THETA)
        return GNG(dim, config["max_nodes"], seed, device=config["device"], mode=variant.removeprefix("gng-"),
                   **{k: config[k] for k in ("eps_b", "eps_n", "a_max", "lam", "alpha", "d", "batch_size")})

    def run_job(self, job: dict, config: dict, out_dir: Path, progress: bool = False) -> dict:
        x_train, x_test = split(job["task"], config, job["seed"])
        torch.manual_seed(job["seed"])
        model = self.model(job["variant"], x_train.shape[1], config, job["seed"], len(x_train))
        started = time.perf_counter()
        model.fit(x_train, epochs=config["epochs"], log_every=config["log_every"], progress=progress)
        train_s = time.perf_counter() - started
        stats = model.graph_stats()
        return {"quantization_error": model.quantization_error(x_test),
                "quantization_error_train": model.quantization_error(x_train),
                "topographic_error": model.topographic_error(x_test),
                "n_nodes": model.n_nodes, "n_edges": model.n_edges, **stats,
                "signals": model.t, "train_s": train_s, "signals_per_s": model.t / train_s,
                "history": model.history,
                "graph": {"nodes": model.nodes.cpu().numpy().round(5).tolist(),
                          "edges": model.edges.cpu().numpy().tolist()}}

    def report(self, results: dict, out_dir) -> None:
        from .gng_report import write_report
        write_report(results, Path(out_dir), variant_order=list(VARIANTS),
                     points=lambda task, seed: split(task, results["config"], seed))

    def option_groups(self) -> list[tuple[str, dict, dict]]:
        return [("experiment", DEFAULT, OPTION_NOTES)]


register(GNGExperiment())
