"""report.md and the plot for the lottery experiment: test accuracy (at the early stop) against
the share of weights remaining, for the winning ticket, its random re-init and random pruning."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..report import markdown_table, pm, save_figure, variant_colors, write_text

CONTROLS = ("ticket", "reinit", "random")
LABELS = {"ticket": "winning ticket (IMP, reset to init)", "reinit": "same structure, random re-init",
          "random": "random pruning"}


def by_level(rows) -> dict:
    """{control: {level: [metrics of each seed]}}."""
    out: dict = {}
    for row in rows:
        for control, levels in row["metrics"]["levels"].items():
            for m in levels:
                out.setdefault(control, {}).setdefault(m["level"], []).append(m)
    return out


def level_table(data: dict) -> str:
    controls = [c for c in CONTROLS if c in data]
    levels = sorted({lv for c in controls for lv in data[c]})
    table = []
    for lv in levels:
        ref = next(data[c][lv] for c in controls if lv in data[c])
        row = [lv, f"{100 * np.mean([m['remaining'] for m in ref]):.1f}"]
        row += [pm([100 * m["test_accuracy"] for m in data[c][lv]], 1) if lv in data[c] else "" for c in controls]
        row += [pm([m["early_stop_iter"] for m in data[c][lv]], 0) if lv in data[c] else "" for c in controls]
        table.append(row)
    return markdown_table(["round", "% weights left"] + [f"test acc. % {c}" for c in controls]
                          + [f"early-stop iter. {c}" for c in controls], table)


def summary(data: dict, epochs_iters: int | None, tolerance: float = 0.5) -> list[str]:
    """One line per control: its best level, and how far it stays within `tolerance` pp of the
    dense net (every level down to there); and whether the early stop is cut by the budget."""
    lines = []
    dense = next((np.mean([100 * m["test_accuracy"] for m in data[c][0]]) for c in data if 0 in data[c]), None)
    if dense is None:
        return lines
    lines.append(f"Dense net (round 0): {dense:.1f}% test accuracy.")
    for control in [c for c in CONTROLS if c in data]:
        levels = sorted(data[control])
        acc = {lv: np.mean([100 * m["test_accuracy"] for m in data[control][lv]]) for lv in levels}
        left = {lv: 100 * np.mean([m["remaining"] for m in data[control][lv]]) for lv in levels}
        best = max(levels, key=lambda lv: (acc[lv], lv))
        holds = 0
        for lv in levels:
            if acc[lv] < dense - tolerance:
                break
            holds = lv
        lines.append(f"- {LABELS[control]}: best {acc[best]:.1f}% at {left[best]:.1f}% of the weights; within "
                     f"{tolerance} pp of the dense net down to {left[holds]:.1f}% (every round before too); "
                     f"{acc[levels[-1]]:.1f}% at {left[levels[-1]]:.1f}%.")
    if epochs_iters:
        stops = [m["early_stop_iter"] for c in data for lv in data[c] for m in data[c][lv]]
        cut = sum(s >= epochs_iters for s in stops)
        if cut:
            lines.append(f"The validation loss was still falling at the last epoch in {cut} of {len(stops)} "
                         "trainings, so the early-stop iterations there are the budget, not a measured "
                         "speed: read that column as a lower bound.")
    return lines


def plot(data: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = variant_colors(list(CONTROLS))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for control in [c for c in CONTROLS if c in data]:
        levels = sorted(data[control])
        x = [100 * np.mean([m["remaining"] for m in data[control][lv]]) for lv in levels]
        for ax, key, scale in ((axes[0], "test_accuracy", 100), (axes[1], "early_stop_iter", 1)):
            values = np.array([[scale * m[key] for m in data[control][lv]] for lv in levels], dtype=float)
            mean, std = values.mean(1), values.std(1)
            ax.plot(x, mean, marker="o", ms=3, label=LABELS[control], color=colors[control])
            ax.fill_between(x, mean - std, mean + std, color=colors[control], alpha=0.15, linewidth=0)
    for ax, label in ((axes[0], "test accuracy % (at the early stop)"), (axes[1], "early-stop iteration")):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("% of weights remaining")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _iters(rows) -> int | None:
    """The last iteration of a training (the early stop's upper end), from the dense level."""
    stops = [m["early_stop_iter"] for r in rows for ls in r["metrics"]["levels"].values() for m in ls]
    return max(stops) if stops else None


def write_report(results: dict, out_dir: Path) -> None:
    rows, cfg = results["rows"], results["config"]
    data = by_level(rows)
    seeds = len({r["seed"] for r in rows})
    n_weights = rows[0]["metrics"]["n_weights"] if rows else 0
    rewind = ("their initial values" if not cfg["rewind_step"]
              else f"their values after {cfg['rewind_step']} optimizer steps")
    scope = (f"layer-wise, {cfg['rate']:.0%} of each layer's remaining weights a round, the output layer "
             f"{cfg['output_rate']:.0%}" if cfg["scope"] == "layer"
             else f"global, {cfg['rate']:.0%} of all remaining weights a round")
    text = [f"# {results['experiment']}", "",
            f"Data: {cfg['data']}, a stratified {1 - cfg['test_fraction']:.0%} / {cfg['test_fraction']:.0%} "
            f"train/test split per seed, {cfg['val_fraction']:.0%} of the training split held out for the early "
            f"stop; features standardised on the training part. Net: GraphNet.mlp "
            f"{'-'.join(map(str, ['in', *cfg['hidden'], 'out']))} (ReLU, nn.Linear init), {n_weights} weights. "
            f"Pruning: {scope}, {cfg['rounds']} rounds; the pruned edges and dead neurons are removed from the "
            f"GraphNet; survivors reset to {rewind}. Every level: {cfg['epochs']} epochs of Adam (lr {cfg['lr']}, "
            f"batch {cfg['batch_size']}) from a fresh optimizer; test accuracy at the epoch of minimum validation "
            f"loss (the paper's early-stop criterion). Seeds: {seeds} (mean ± std over seeds)."
            + (f" Command: `{results['command']}`." if results.get("command") else ""), "",
            "Controls: *reinit* keeps each ticket's structure and draws fresh weights from the initial "
            "distribution; *random* removes as many weights per layer each round as IMP does, chosen at random, "
            "survivors reset to their initial values.", "",
            "## Accuracy vs weights remaining", "", *summary(data, _iters(rows)), "", level_table(data), "",
            "![accuracy vs weights remaining](accuracy_vs_remaining.png)", ""]
    plot(data, out_dir / "accuracy_vs_remaining.png")
    write_text(out_dir / "report.md", "\n".join(text))
