"""URN experiments (Golkar 2019): structure that emerges from one matrix and one loss.

  urn-shells   10-d concentric shells, S neurons, I sweeps: accuracy, active neurons, detected
               structure; the emergent MLP is exported as nn.Sequential and compared.
  urn-digits   8x8 digits with input neurons at their pixel positions: first-layer receptive
               fields with the locality term on vs off, measured against a shuffled control.
  urn-sweep    a grid over the weight regulator and the number of sweeps I: emergent depth,
               width and skip share (the phase diagram; residual paths appear as skip share).
Every run also compacts the trained network through apply_edits (dead edges and neurons
removed) and times an epoch before and after. `--data FILE.npz` replaces the dataset.
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..core.edits import Edits
from ..core.validate import check_device, check_int
from ..errors import ConfigError
from ..report import save_figure
from ..train.urn import URN, accuracy, to_sequential, train_urn, training_epoch
from . import register

COMMON = {"data": "shells", "size": 500, "steps": 4, "epochs": 60, "lr": 1e-3, "batch_size": 128,
          "ramp_epochs": 20, "c_weight": 1e-3, "c_activity": 1e-4, "c_local": 0.0, "seeds": 2,
          "threshold": 1e-3, "device": "cpu", "compact_every": 0, "compact_zeros_every": 0}
QUICK = {"size": 120, "epochs": 15, "ramp_epochs": 5, "seeds": 1}


def parse_variant(name: str) -> dict:
    """'c_weight=1e-3,steps=3' -> {'c_weight': 0.001, 'steps': 3}."""
    out = {}
    for part in filter(None, name.split(",")):
        key, sep, value = part.partition("=")
        if not sep:  # a plain name such as "urn": no overrides
            continue
        try:
            out[key] = int(value) if key in ("steps", "size") else float(value)
        except ValueError:
            kind = "an integer" if key in ("steps", "size") else "a number"
            raise ConfigError(f"variant {name!r}: {key}={value!r} must be {kind}") from None
    return out


def _check_settings(config: dict) -> None:
    """Counts are integers in range and coefficients finite numbers >= 0 (lr > 0); in place."""
    for key, minimum in (("size", 1), ("steps", 1), ("epochs", 1), ("batch_size", 1), ("seeds", 1),
                         ("ramp_epochs", 0), ("compact_every", 0), ("compact_zeros_every", 0)):
        config[key] = check_int(config[key], key, minimum)
    for key in ("lr", "c_weight", "c_activity", "c_local", "threshold"):
        v, positive = config[key], key == "lr"
        if (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0
                or (positive and v == 0)):
            raise ConfigError(f"{key}={v!r} must be a finite number {'> 0' if positive else '>= 0'}")


OPTION_NOTES = {
    "data": "'shells', 'digits', FILE.npz (X, y, optional positions) or an MNIST IDX directory; also --data",
    "size": "S, neurons in all (inputs and outputs included)",
    "steps": "I, sweeps of the one matrix",
    "variants": "each 'key=value,...' over c_weight, c_activity, c_local, steps, size; 'urn': none",
    "ramp_epochs": "epochs over which the regulators ramp in",
    "c_weight": "L1 on W (a proximal step: exact zeros)",
    "c_activity": "L1 on the activity of every sweep",
    "c_local": "|W_ij| times the distance of i and j (needs input positions)",
    "threshold": "|w| below which an edge counts as dead (structure, compaction)",
    "compact_every": "epochs between compactions once the ramp is over (0: only at the end)",
    "compact_zeros_every": "epochs between removals of exact-zero edges during the ramp (0: none)",
    "device": "cpu or cuda",
}


class URNExperiment:
    inputs = "data"  # a dataset (--data); control-task experiments take --envs instead

    def __init__(self, name: str, description: str, defaults: dict, variants: list[str], full: dict):
        self.name, self.description = name, description
        self.defaults, self.variants, self.full = {**COMMON, **defaults}, variants, full

    def config(self, quick: bool, full: bool, overrides: dict) -> dict:
        config = {**self.defaults, "variants": self.variants, **(QUICK if quick else self.full if full else {})}
        for key, value in overrides.items():
            if key not in config:
                raise ConfigError(f"unknown {self.name} option {key!r}; known: {', '.join(sorted(config))}")
            config[key] = value
        if isinstance(config["variants"], str):
            config["variants"] = [config["variants"]]
        if not isinstance(config["variants"], list) or not all(isinstance(v, str) for v in config["variants"]):
            raise ConfigError(f"variants={config['variants']!r} must be a list of strings "
                              "such as 'c_weight=1e-3,steps=3'")
        _check_settings(config)
        parsed = {variant: parse_variant(variant) for variant in config["variants"]}
        for variant, settings in parsed.items():  # a bad variant fails here, before any job starts
            for key in settings:
                if key not in ("c_weight", "c_activity", "c_local", "steps", "size"):
                    raise ConfigError(f"variant {variant!r} sets {key!r}; a variant may set c_weight, "
                                      "c_activity, c_local, steps or size")
            try:
                _check_settings({**config, **settings})
            except ConfigError as exc:
                raise ConfigError(f"variant {variant!r}: {exc}") from None
        config["device"] = check_device(config["device"])
        from ..tasks.datasets import load_data
        data = load_data(config["data"])  # fails early on a bad --data
        size_min = data.n_in + data.n_classes + 1
        if "size" not in overrides and config["size"] < size_min:
            # the default size is for the built-in data; wider user data gets as many hidden
            # neurons as it has inputs and outputs (set size to choose otherwise)
            config["size"] = 2 * (data.n_in + data.n_classes)
        for variant, settings in parsed.items():
            c_local = settings.get("c_local", config["c_local"])
            if c_local and data.positions is None:
                raise ConfigError(f"variant {variant!r}: c_local={c_local} needs input positions, and the data "
                                  "has none (add a positions array to the .npz, give (n, h, w) images, or "
                                  "--set \"variants=['c_local=0']\")")
            size = settings.get("size", config["size"])
            if size < size_min:
                raise ConfigError(f"size={size} cannot hold {data.n_in} inputs and {data.n_classes} outputs "
                                  f"(needs >= {size_min})")
        return config

    def jobs(self, config: dict) -> list[dict]:
        return [{"task": str(config["data"]), "variant": v, "seed": s}
                for v in config["variants"] for s in range(config["seeds"])]

    def run_job(self, job: dict, config: dict, out_dir: Path, progress: bool = False) -> dict:
        from ..analysis import structure
        from ..tasks.datasets import load_data
        settings = {**config, **parse_variant(job["variant"])}
        data = load_data(config["data"], seed=job["seed"])
        torch.manual_seed(job["seed"])
        net = URN(data.n_in, data.n_classes, size=settings["size"], steps=settings["steps"],
                  positions=data.positions, seed=job["seed"], c_weight=settings["c_weight"],
                  c_activity=settings["c_activity"], c_local=settings["c_local"])
        from .resume import partial_path
        from .runner import job_name
        partial = partial_path(out_dir, job)  # a killed job continues from its last epoch
        started = time.perf_counter()
        history = train_urn(net, data.x_train, data.y_train, epochs=settings["epochs"], lr=settings["lr"],
                            batch_size=settings["batch_size"], seed=job["seed"], device=settings["device"],
                            ramp_epochs=settings["ramp_epochs"], compact_every=settings["compact_every"],
                            compact_zeros_every=settings["compact_zeros_every"], progress=progress,
                            checkpoint=partial)
        # train_s: this attempt; epoch_s_total: every epoch, those of an interrupted attempt too
        train_s = time.perf_counter() - started
        epoch_s_total = sum(h["epoch_s"] for h in history)
        x_test = torch.as_tensor(data.x_test, dtype=torch.float32, device=settings["device"])
        y_test = torch.as_tensor(data.y_test, dtype=torch.long, device=settings["device"])
        acc = accuracy(net, x_test, y_test)
        probe = x_test[:1000]
        found = structure(net, probe, threshold=settings["threshold"], positions=data.positions,
                          control_seed=job["seed"])
        layer_of = found.pop("layer_of")
        ablation = edge_kind_ablation(net, layer_of, x_test, y_test)
        timing = compaction_timing(net, data, settings)
        acc_compact = accuracy(net, x_test, y_test)
        metrics = {"test_accuracy": acc, "test_accuracy_compacted": acc_compact, "structure": found,
                   "accuracy_without": ablation,
                   "has_positions": data.positions is not None,
                   "n_params": net.n_params, "n_hidden": net.n_hidden, "n_edges": net.n_edges,
                   "train_s": train_s, "epoch_s_total": epoch_s_total, **timing,
                   "history": [{"step": h["epoch"], "loss": h["loss"], "task": h["task"], "epoch_s": h["epoch_s"],
                                "n_edges": h["n_edges"]} for h in history]}
        if found["is_mlp"]:
            # The Sequential keeps only layer k -> k+1 edges; the remaining (< 5%) mass is dropped,
            # so outputs are compared by value and by decision.
            seq = to_sequential(net, layer_of).to(probe.device)
            with torch.no_grad():
                metrics["sequential_max_abs_diff"] = float((seq(x_test) - net(x_test)).abs().max())
                metrics["sequential_agreement"] = float((seq(x_test).argmax(1) == net(x_test).argmax(1)).float().mean())
            metrics["sequential_test_accuracy"] = accuracy(seq, x_test, y_test)
            metrics["sequential_widths"] = [m.out_features for m in seq if isinstance(m, torch.nn.Linear)][:-1]
        from ..core.checkpoint import save
        (out_dir / "nets").mkdir(exist_ok=True)
        save(out_dir / "nets" / f"{job_name(job)}.ckpt", net)  # compacted: small
        partial.unlink()
        if job["seed"] == 0:
            save_weight_plot(net, layer_of, out_dir / f"W_{job['variant'].replace('=', '').replace(',', '_')}.png",
                             title=f"{job['task']} {job['variant']}: |W| of active neurons, ordered by layer")
        return metrics

    def report(self, results: dict, out_dir) -> None:
        from .urn_report import write_report
        variants = {r["variant"] for r in results["rows"]} | set(results["config"].get("variants", []))
        write_report(results, Path(out_dir), variant_settings={v: parse_variant(v) for v in variants})

    def job_files(self, job: dict, config: dict, out_dir: Path) -> list[Path]:
        """The checkpoint files a job writes: its trained (compacted) network."""
        from .runner import job_name
        return [out_dir / "nets" / f"{job_name(job)}.ckpt"]

    def option_groups(self) -> list[tuple[str, dict, dict]]:
        """(title, {option: default}, {option: note}) for `neuroplastic run NAME --help`."""
        return [("experiment", {**self.defaults, "variants": self.variants}, OPTION_NOTES)]

    @property
    def presets(self) -> dict:
        return {"--quick": QUICK, "--full": self.full}


def edge_kind_ablation(net: URN, layer_of: dict, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Test accuracy of copies of the net with one kind of edge between active neurons (and
    the inputs and outputs) removed: the edges that are not layer k -> k+1 ("non-layered"),
    self loops, skips (k -> k+2 or more), lateral and backward edges (k -> k or lower). What
    the MLP score weighs by |w| mass, this weighs by what the function needs."""
    src, dst, _ = (t.detach().cpu() for t in net.edges())
    depth = max(layer_of.values(), default=0)
    layer = torch.full((net.capacity,), -1)
    layer[:net.n_in] = 0
    layer[net.n_in:net.n_in + net.n_out] = depth + 1
    if layer_of:
        layer[torch.tensor(list(layer_of))] = torch.tensor(list(layer_of.values()))
    ranked = (layer[src] >= 0) & (layer[dst] >= 0)  # edges of constant neurons stay in every copy
    gap, loop = layer[dst] - layer[src], src == dst
    kinds = {"non_layered": ranked & ((gap != 1) | loop), "self_loops": ranked & loop,
             "skips": ranked & (gap > 1), "lateral_and_backward": ranked & (gap <= 0) & ~loop}
    out = {}
    for kind, cut in kinds.items():
        ablated = copy.deepcopy(net)
        ablated.apply_edits(Edits().remove_edges(src[cut], dst[cut]))
        out[kind] = {"edges": int(cut.sum()), "test_accuracy": accuracy(ablated, x, y)}
    return out


def compaction_timing(net: URN, data, settings: dict) -> dict:
    """Seconds per training epoch before and after compacting the trained net in place."""
    x = torch.as_tensor(data.x_train, dtype=torch.float32, device=settings["device"])
    y = torch.as_tensor(data.y_train, dtype=torch.long, device=settings["device"])

    def epoch_seconds(model):
        started = time.perf_counter()
        training_epoch(model, x, y, settings["batch_size"])
        return time.perf_counter() - started

    before = epoch_seconds(copy.deepcopy(net))
    dense_edges = net.n_edges
    removed = net.compact(threshold=settings["threshold"])
    after = epoch_seconds(copy.deepcopy(net))
    return {"epoch_s_dense": before, "epoch_s_compacted": after, "compaction_speedup": before / after,
            "edges_before_compaction": dense_edges, "sparse_kernel": bool(net.plan().sparse), **removed}


def save_weight_plot(net, layer_of: dict, path: Path, title: str) -> None:
    """|W| restricted to inputs, active neurons and outputs, ordered by layer (the paper's figure)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    order = list(range(net.n_in)) + sorted(layer_of, key=lambda i: (layer_of[i], i)) + \
        list(range(net.n_in, net.n_in + net.n_out))
    index = {n: k for k, n in enumerate(order)}
    w = np.zeros((len(order), len(order)))
    src, dst, val = (t.detach().cpu().numpy() for t in net.edges())
    for s, d, v in zip(src, dst, val):
        if s in index and d in index:
            w[index[d], index[s]] = abs(v)
    fig, ax = plt.subplots(figsize=(6.2, 5))
    image = ax.imshow(w, cmap="Greys", interpolation="nearest",
                      vmax=np.percentile(w[w > 0], 99) if (w > 0).any() else 1)
    fig.colorbar(image, ax=ax, shrink=0.8, label="|w| (scale capped at the 99th percentile)")
    bounds = np.cumsum([net.n_in] + [sum(1 for k in layer_of.values() if k == d)
                                      for d in range(1, max(layer_of.values(), default=0) + 1)])
    for b in bounds:
        ax.axhline(b - 0.5, color="tab:red", lw=0.5)
        ax.axvline(b - 0.5, color="tab:red", lw=0.5)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("source (inputs | layer 1 | ... | outputs)")
    ax.set_ylabel("target")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


register(URNExperiment("urn-shells", "URN on 10-d concentric shells: emergent MLP structure",
                       {"data": "shells"}, ["urn"],
                       # the paper's scale; lifetime compaction makes it a CPU run (docs/urn.md)
                       {"size": 5000, "seeds": 3, "compact_every": 5, "compact_zeros_every": 1}))
register(URNExperiment("urn-digits", "URN on 8x8 digits: local receptive fields with the locality term on vs off",
                       {"data": "digits", "steps": 3, "size": 250},
                       ["c_local=0", "c_local=0.001", "c_local=0.003"], {"size": 1000, "seeds": 3}))
register(URNExperiment("urn-sweep", "URN phase diagram: depth, width and skip share vs regulator and sweeps",
                       {"data": "shells", "size": 200, "epochs": 40, "seeds": 1},
                       [f"c_weight={c},steps={i}" for c in ("1e-4", "1e-3", "1e-2") for i in (2, 3, 4, 6)]
                       # does a stronger activity penalty turn the I=4 bridges into plain layers?
                       + [f"c_weight=1e-3,steps=4,c_activity={a}" for a in ("1e-3", "1e-2")],
                       {"size": 500, "seeds": 2}))
