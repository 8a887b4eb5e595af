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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{str(path)!r} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{str(path)!r} cannot be read: {exc.strerror or exc}") from None
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


def tasks_and_variants(rows: list[dict], variant_order) -> tuple[list, list]:
    """The rows' tasks in first-seen order, and their variants in the experiment's order
    (variants it does not list, e.g. from an older run in the same folder, after them)."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    present = {r["variant"] for r in rows}
    return tasks, [v for v in variant_order if v in present] + sorted(present - set(variant_order))


def mean_std(values) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std())


def pm(values, digits: int = 1) -> str:
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def section(title: str, intro: list[str], table: str) -> list[str]:
    """A report section's lines (heading, lines of explanation, table), or none without a table."""
    return [f"## {title}", "", *intro, "", table, ""] if table else []


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def saved_net(path):
    """The GraphNet saved at `path` for a report's drawing; None when there is none or it is
    damaged (said in one line: the report goes on without that drawing)."""
    import sys

    from .core.checkpoint import load
    from .errors import CheckpointError
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return load(path)["net"]
    except CheckpointError as exc:
        print(f"neuroplastic: {exc}; its drawing is left out of the report", file=sys.stderr)
        return None


def save_figure(fig, path, dpi: int = 110) -> None:
    """fig as a PNG at path, written atomically; the figure's own margins are trimmed so that
    a legend placed beside the axes is kept."""
    import io
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def curves(rows: list[dict], key: str) -> dict:
    """{(task, variant): (steps, mean, std, low, high)} of history[key] over seeds, where low and
    high are the smallest and largest seed's value at each step."""
    by: dict = defaultdict(list)
    for row in rows:
        hist = row["metrics"].get("history") or []
        if hist:
            by[(row["task"], row["variant"])].append(([h["step"] for h in hist], [h[key] for h in hist]))
    out = {}
    for k, runs in by.items():
        n = min(len(s) for s, _ in runs)
        values = np.array([v[:n] for _, v in runs], dtype=float)
        out[k] = (runs[0][0][:n], values.mean(0), values.std(0), values.min(0), values.max(0))
    return out


def variant_colors(variants) -> dict:
    """One colour per variant, fixed by its place in `variants`, for every plot of a report."""
    import matplotlib
    palette = matplotlib.colormaps["tab10" if len(variants) <= 10 else "tab20"].colors
    return {v: palette[i % len(palette)] for i, v in enumerate(dict.fromkeys(variants))}


def plot_curves(rows: list[dict], key: str, ylabel: str, path, log: bool = False,
                variants: list[str] | None = None, colors: dict | None = None) -> None:
    """One panel per task: the mean over seeds of history[key] against the step, with a band of
    ± one std over seeds. The band is clipped to the range the seeds span, so it never leaves
    the values the task can take (a return above CartPole's 500, a negative size). `variants`
    selects and orders the lines, `colors` maps each variant to its colour (variant_colors)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    data = curves(rows, key)
    order = list(variants) if variants else sorted({v for _, v in data})
    colors = colors or variant_colors(order)
    tasks = sorted({t for t, _ in data})
    fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(5 * max(len(tasks), 1), 3.8), squeeze=False)
    handles = {}
    for ax, task in zip(axes[0], tasks):
        for variant in order:
            if (task, variant) not in data:
                continue
            steps, mean, std, low, high = data[(task, variant)]
            color = colors.get(variant)
            (line,) = ax.plot(steps, mean, label=variant, color=color)
            ax.fill_between(steps, np.maximum(mean - std, low), np.minimum(mean + std, high),
                            color=line.get_color(), alpha=0.15, linewidth=0)
            handles.setdefault(variant, line)
        ax.set_title(task)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        if log and any(np.any(np.asarray(data[(task, v)][1]) > 0) for v in order if (task, v) in data):
            ax.set_yscale("log")  # not for curves that are all 0 (a log axis cannot show them)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    if handles:  # beside the panels, so that no line is hidden behind it
        fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5),
                   fontsize=8, frameon=False)
    save_figure(fig, path)
    plt.close(fig)
