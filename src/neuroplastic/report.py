"""Tables (markdown) and plots (matplotlib) from results.json content.

Experiment modules decide *what* to show; the helpers here only aggregate rows over seeds
and format them, so every report reads the same way.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from .core.checkpoint import atomic_write_bytes
from .errors import ConfigError


def load_results(path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no results at {str(path)!r}; run an experiment with --out first") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(results, dict) or not {"experiment", "config", "rows"} <= set(results):
        raise ConfigError(f"{str(path)!r} is not a results.json (needs experiment, config, rows)")
    rows = results["rows"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"task", "variant", "seed"} <= set(r)
                                             and isinstance(r.get("metrics"), dict) for r in rows):
        raise ConfigError(f"{str(path)!r}: every row needs task, variant, seed and a metrics dict")
    return results


def group(rows: list[dict], metric: str) -> dict:
    """{(task, variant): [value per seed]} for rows that have the metric."""
    out: dict = defaultdict(list)
    for row in rows:
        value = row["metrics"].get(metric)
        if value is not None:
            out[(row["task"], row["variant"])].append(value)
    return out


def mean_std(values) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std())


def pm(values, digits: int = 1) -> str:
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def curves(rows: list[dict], key: str) -> dict:
    """{(task, variant): (steps, mean over seeds, std over seeds)} of history[key]."""
    by: dict = defaultdict(list)
    for row in rows:
        hist = row["metrics"].get("history") or []
        if hist:
            by[(row["task"], row["variant"])].append(([h["step"] for h in hist], [h[key] for h in hist]))
    out = {}
    for k, runs in by.items():
        n = min(len(s) for s, _ in runs)
        values = np.array([v[:n] for _, v in runs], dtype=float)
        out[k] = (runs[0][0][:n], values.mean(0), values.std(0))
    return out


def plot_curves(rows: list[dict], key: str, ylabel: str, path, log: bool = False,
                variants: list[str] | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    data = curves(rows, key)
    tasks = sorted({t for t, _ in data})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for (t, variant), (steps, mean, std) in sorted(data.items()):
            if t != task or (variants and variant not in variants):
                continue
            ax.plot(steps, mean, label=variant)
            ax.fill_between(steps, mean - std, mean + std, alpha=0.15)
        ax.set_title(task)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
