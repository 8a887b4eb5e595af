"""Lottery tickets (Frankle & Carbin 2019) on sklearn digits: an MLP 64-300-100-10, the
analogue of the paper's LeNet-300-100 on MNIST.

Method: iterative magnitude pruning (`neuroplastic.prune`), `rounds` rounds of `rate` of the
remaining weights each (layer-wise, the output layer at half the rate, as the paper prunes
LeNet; `scope=global` ranks all weights together), survivors reset to their initial values
(`rewind_step` = k: to their values after k optimizer steps). The pruning removes the edges
(and dead neurons) from the GraphNet. Every level trains from scratch with a fresh Adam
(the paper's lr 1.2e-3, batch 60) for `epochs` epochs on the training split less a
validation share. Early stop (the paper's App. C): the epoch of minimum validation loss;
test accuracy is read there. Controls: the same structure re-initialised at random
("reinit"), and as many weights pruned per layer at random ("random"). Features are
standardised with the training split's statistics. `--data FILE.npz` (X, y) replaces digits.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from ..core.validate import check_int, check_number
from ..errors import ConfigError
from . import register
from .options import string_list, with_overrides

DEFAULT = {"data": "digits", "variants": ["imp", "random"], "seeds": 3, "hidden": [300, 100],
           # pruning
           "rounds": 15, "rate": 0.2, "scope": "layer", "output_rate": None, "rewind_step": 0,
           # training (the paper's optimiser and batch)
           "epochs": 20, "lr": 1.2e-3, "batch_size": 60, "val_fraction": 0.1, "test_fraction": 0.25,
           "threads": 1}
QUICK = {"seeds": 1, "rounds": 3, "epochs": 5}
FULL = {"seeds": 5}
VARIANTS = ("imp", "random")   # imp: the winning ticket and its random re-init; random: random pruning

OPTION_NOTES = {
    "data": "digits or FILE.npz (X, y); also --data",
    "variants": "imp (winning ticket + random re-init) and/or random (random pruning)",
    "hidden": "hidden layer widths", "rounds": "pruning rounds (15 x 20% leaves ~3.9%)",
    "rate": "share of the remaining weights pruned a round, in (0, 1)",
    "scope": "layer (output layer at output_rate) or global",
    "output_rate": "output layer's rate in layer scope; default rate / 2 (the paper's)",
    "rewind_step": "0: reset survivors to init; k: to their values after k optimizer steps",
    "epochs": "epochs of Adam per level", "val_fraction": "share of the training split for the early stop",
    "threads": "torch CPU threads (the nets are small: 1 is fastest)",
}


def load_split(spec: str, seed: int, val_fraction: float):
    """(train, validation, test) pairs, standardised with the training split's statistics."""
    from sklearn.model_selection import train_test_split

    from ..tasks.datasets import load_data
    data = load_data(spec, seed=seed)
    x_tr, x_va, y_tr, y_va = train_test_split(data.x_train, data.y_train, test_size=val_fraction,
                                              random_state=seed, stratify=data.y_train)
    mean, std = x_tr.mean(0), x_tr.std(0)
    std = np.where(std > 0, std, 1.0)
    norm = [((x - mean) / std).astype(np.float32) for x in (x_tr, x_va, data.x_test)]
    return (norm[0], y_tr), (norm[1], y_va), (norm[2], data.y_test)


class LotteryExperiment:
    name = "lottery"
    description = "lottery tickets: iterative magnitude pruning with rewinding, MLP 64-300-100-10 on digits"
    inputs = "data"
    presets = {"--quick": QUICK, "--full": FULL}

    def config(self, quick: bool, full: bool, overrides: dict) -> dict:
        from ..prune import check_options
        config = with_overrides("lottery", DEFAULT, QUICK if quick else FULL if full else {}, overrides)
        config["variants"] = string_list(config, "variants")
        for v in config["variants"]:
            if v not in VARIANTS:
                raise ConfigError(f"variant={v!r} is not supported; expected one of {list(VARIANTS)}")
        if isinstance(config["data"], list):
            if len(config["data"]) != 1:
                raise ConfigError(f"data={config['data']!r}: the lottery experiment takes one data set")
            config["data"] = config["data"][0]
        hidden = config["hidden"]
        if isinstance(hidden, str):
            hidden = [int(h) for h in hidden.split(",") if h.strip().isdigit()] or hidden
        if isinstance(hidden, int) and not isinstance(hidden, bool):
            hidden = [hidden]
        if not isinstance(hidden, list) or not hidden:
            raise ConfigError(f"hidden={config['hidden']!r} must be a list of layer widths, e.g. 300,100")
        config["hidden"] = [check_int(h, "hidden width", 1) for h in hidden]
        config.update(check_options(config["rate"], config["scope"], config["output_rate"], config["rewind_step"]))
        for key, minimum in (("seeds", 1), ("rounds", 0), ("epochs", 1), ("batch_size", 1), ("threads", 1)):
            config[key] = check_int(config[key], key, minimum)
        for key in ("val_fraction", "test_fraction"):
            config[key] = check_number(config[key], key, above=0, below=1)
        config["lr"] = check_number(config["lr"], "lr", above=0)
        if config["data"] != "digits":
            if not str(config["data"]).endswith(".npz"):
                raise ConfigError(f"data {config['data']!r} is neither digits nor a FILE.npz")
            load_split(config["data"], 0, config["val_fraction"])  # a bad file fails here, before any job
        return config

    def jobs(self, config: dict) -> list[dict]:
        return [{"task": config["data"], "variant": v, "seed": s} for s in range(config["seeds"])
                for v in config["variants"]]

    def run_job(self, job: dict, config: dict, out_dir: Path, progress: bool = False) -> dict:
        from ..core.graph import GraphNet
        from ..prune import find_tickets
        from ..train.supervised import evaluate, train_supervised
        torch.set_num_threads(config["threads"])
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = load_split(job["task"], job["seed"], config["val_fraction"])
        x_va_t, y_va_t = torch.as_tensor(x_va), torch.as_tensor(y_va).long()
        steps_per_epoch = math.ceil(len(x_tr) / config["batch_size"])
        n_classes = int(max(y_tr.max(), y_te.max())) + 1

        def train(net, rule) -> dict:
            def on_epoch(model, optimizer, epoch):
                with torch.no_grad():
                    val_loss = float(torch.nn.functional.cross_entropy(model(x_va_t), y_va_t))
                return {"val_loss": val_loss, "test": evaluate(model, x_te, y_te)}
            started = time.perf_counter()
            hist = train_supervised(net, x_tr, y_tr, epochs=config["epochs"], lr=config["lr"],
                                    batch_size=config["batch_size"], seed=job["seed"], rule=rule,
                                    x_val=x_va, y_val=y_va, on_epoch=on_epoch)
            best = min(range(len(hist)), key=lambda i: hist[i]["val_loss"])
            return {"test_accuracy": hist[best]["test"], "final_test_accuracy": hist[-1]["test"],
                    "early_stop_iter": (best + 1) * steps_per_epoch, "val_accuracy": hist[best]["val"],
                    "train_accuracy": evaluate(net, x_tr, y_tr), "hidden": net.n_hidden,
                    "train_s": time.perf_counter() - started}

        net = GraphNet.mlp(x_tr.shape[1], config["hidden"], n_classes, activation="relu", seed=job["seed"])
        controls = ("ticket", "reinit") if job["variant"] == "imp" else ("random",)
        started = time.perf_counter()
        levels = find_tickets(net, train, config["rounds"], rate=config["rate"], scope=config["scope"],
                              output_rate=config["output_rate"], rewind_step=config["rewind_step"],
                              controls=controls, seed=job["seed"])
        return {"levels": levels, "n_weights": levels[controls[0]][0]["edges"],
                "wall_s": time.perf_counter() - started}

    def report(self, results: dict, out_dir) -> None:
        from .lottery_report import write_report
        write_report(results, Path(out_dir))

    def option_groups(self) -> list[tuple[str, dict, dict]]:
        return [("experiment", DEFAULT, OPTION_NOTES)]


register(LotteryExperiment())
