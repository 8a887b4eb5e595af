"""report.md and the plots for the lottery experiment, one section per task: test accuracy (at
the early stop) against the share of weights remaining for the winning ticket, its random
re-init and random pruning; the iterations to the early stop beside it; and for a distilled
policy its return in the environment."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..report import markdown_table, pm, save_figure, variant_colors, write_text

CONTROLS = ("ticket", "reinit", "random")
LABELS = {"ticket": "winning ticket (IMP, reset to init)", "reinit": "same structure, random re-init",
          "random": "random pruning"}


def by_level(rows) -> dict:
    """{task: {control: {level: [metrics of each seed]}}}."""
    out: dict = {}
    for row in rows:
        for control, levels in row["metrics"]["levels"].items():
            for m in levels:
                out.setdefault(row["task"], {}).setdefault(control, {}).setdefault(m["level"], []).append(m)
    return out


def _controls(data: dict) -> list[str]:
    return [c for c in CONTROLS if c in data]


def _column(data, control, lv, key, scale=1.0, digits=1) -> str:
    ms = data[control].get(lv)
    if not ms or key not in ms[0]:
        return ""
    return pm([scale * m[key] for m in ms], digits)


def level_table(data: dict) -> str:
    controls = _controls(data)
    levels = sorted({lv for c in controls for lv in data[c]})
    policy = any("return_mean" in m for c in controls for ms in data[c].values() for m in ms)
    headers = ["round", "% weights left"] + [f"test acc. % {c}" for c in controls]
    headers += [f"return {c}" for c in controls] if policy else []
    table = []
    for lv in levels:
        ref = next(data[c][lv] for c in controls if lv in data[c])
        row = [lv, f"{100 * np.mean([m['remaining'] for m in ref]):.1f}"]
        row += [_column(data, c, lv, "test_accuracy", 100) for c in controls]
        row += [_column(data, c, lv, "return_mean", 1, 0) for c in controls] if policy else []
        table.append(row)
    return markdown_table(headers, table)


def speed_table(data: dict) -> str:
    controls = _controls(data)
    levels = sorted({lv for c in controls for lv in data[c]})
    table = []
    for lv in levels:
        ref = next(data[c][lv] for c in controls if lv in data[c])
        row = [lv, f"{100 * np.mean([m['remaining'] for m in ref]):.1f}"]
        row += [_column(data, c, lv, "early_stop_iter", 1, 0) for c in controls]
        row += [_column(data, c, lv, "converge_iter", 1, 0) for c in controls]
        table.append(row)
    return markdown_table(["round", "% weights left"] + [f"early-stop iter. {c}" for c in controls]
                          + [f"iter. to within 10% of min. val. loss {c}" for c in controls], table)


def summary(data: dict, tolerance: float = 0.5, labels: dict = LABELS) -> list[str]:
    """One line per control: its best level, and how far it stays within `tolerance` pp of the
    dense net (every level down to there); and how often the early stop is cut by the budget."""
    lines = []
    dense = next((np.mean([100 * m["test_accuracy"] for m in data[c][0]]) for c in data if 0 in data[c]), None)
    if dense is None:
        return lines
    ref = next(data[c][0] for c in data if 0 in data[c])
    line = f"Dense net (round 0): {dense:.1f}% test accuracy"
    if "return_mean" in ref[0]:
        line += f", return {np.mean([m['return_mean'] for m in ref]):.1f}"
    lines.append(line + ".")
    for control in _controls(data):
        levels = sorted(data[control])
        acc = {lv: np.mean([100 * m["test_accuracy"] for m in data[control][lv]]) for lv in levels}
        left = {lv: 100 * np.mean([m["remaining"] for m in data[control][lv]]) for lv in levels}
        best = max(levels, key=lambda lv: (acc[lv], lv))
        holds = 0
        for lv in levels:
            if acc[lv] < dense - tolerance:
                break
            holds = lv
        line = (f"- {labels[control]}: best {acc[best]:.1f}% at {left[best]:.1f}% of the weights; within "
                f"{tolerance} pp of the dense net down to {left[holds]:.1f}% (every round before too); "
                f"{acc[levels[-1]]:.1f}% at {left[levels[-1]]:.1f}%")
        if "return_mean" in data[control][levels[-1]][0]:
            ret = {lv: np.mean([m["return_mean"] for m in data[control][lv]]) for lv in levels}
            line += f"; return {ret[levels[-1]]:.1f} there, lowest {min(ret.values()):.1f}"
        lines.append(line + ".")
    stops = [m for c in data for lv in data[c] for m in data[c][lv] if "budget_iter" in m]
    cut = sum(m["early_stop_iter"] >= m["budget_iter"] for m in stops)
    if stops:
        lines.append(f"The minimum validation loss fell in the last epoch in {cut} of {len(stops)} trainings"
                     + (": there the early-stop iteration is the budget, a lower bound." if cut else "."))
    return lines


def plot(data: dict, path: Path, labels: dict = LABELS) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = variant_colors(list(CONTROLS))
    panels = [("test_accuracy", 100, "test accuracy % (at the early stop)"),
              ("early_stop_iter", 1, "early-stop iteration (min. val. loss)"),
              ("converge_iter", 1, "iterations to within 10% of min. val. loss")]
    panels.append(("return_mean", 1, "return of the policy"))
    every = [m for c in data for ms in data[c].values() for m in ms]
    panels = [p for p in panels if all(p[0] in m for m in every)]  # older results lack some
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for control in _controls(data):
        levels = sorted(data[control])
        x = [100 * np.mean([m["remaining"] for m in data[control][lv]]) for lv in levels]
        for ax, (key, scale, _) in zip(axes, panels):
            values = np.array([[scale * m[key] for m in data[control][lv]] for lv in levels], dtype=float)
            mean, std = values.mean(1), values.std(1)
            ax.plot(x, mean, marker="o", ms=3, label=labels[control], color=colors[control])
            ax.fill_between(x, mean - std, mean + std, color=colors[control], alpha=0.15, linewidth=0)
    for ax, (_, _, label) in zip(axes, panels):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("% of weights remaining")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _slug(task: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", Path(task).name or task).strip("_").lower() or "task"


def _task_text(task: str, rows: list, cfg: dict) -> str:
    if any("return_mean" in m for r in rows for ls in r["metrics"]["levels"].values() for m in ls):
        return (f"{task}, a distilled policy: the built-in teacher's (state, action) pairs from "
                f"{cfg.get('policy_episodes', '?')} episodes, split {1 - cfg['test_fraction']:.0%} / "
                f"{cfg['test_fraction']:.0%} at random; test accuracy is the agreement with the teacher on held-out "
                f"states, and the return is the mean over the same {cfg.get('eval_episodes', '?')} evaluation "
                "episodes for every net, run with the weights of the early stop")
    if Path(task).is_dir() or not task.endswith(".npz") and task != "digits":
        return f"{task}, MNIST-format IDX files: their own train and t10k sets"
    return f"{task}, a stratified {1 - cfg['test_fraction']:.0%} / {cfg['test_fraction']:.0%} train/test split per seed"


def labels_for(rewind_step: int) -> dict:
    """The controls' labels; the ticket's names the rewind point when survivors go back to
    iteration k > 0."""
    if not rewind_step:
        return LABELS
    return {**LABELS, "ticket": f"winning ticket (IMP, rewound to iteration {rewind_step})"}


def write_report(results: dict, out_dir: Path) -> None:
    rows, cfg = results["rows"], results["config"]
    labels = labels_for(cfg["rewind_step"])
    data = by_level(rows)
    seeds = len({r["seed"] for r in rows})
    rewind = ("their initial values" if not cfg["rewind_step"]
              else f"their values after {cfg['rewind_step']} optimizer steps")
    scope = (f"layer-wise, {cfg['rate']:.0%} of each layer's remaining weights a round, the output layer "
             f"{cfg['output_rate']:.0%}" if cfg["scope"] == "layer"
             else f"global, {cfg['rate']:.0%} of all remaining weights a round")
    text = [f"# {results['experiment']}", "",
            f"Net: GraphNet.mlp {'-'.join(map(str, ['in', *cfg['hidden'], 'out']))} (ReLU, nn.Linear init). "
            f"Pruning: {scope}, {cfg['rounds']} rounds; the pruned edges and dead neurons are removed from the "
            f"GraphNet; survivors reset to {rewind}. Every level: {cfg['epochs']} epochs of Adam (lr {cfg['lr']}, "
            f"batch {cfg['batch_size']}) from a fresh optimizer, {cfg['val_fraction']:.0%} of the training split held "
            "out for the early stop, features standardised on the training part; test accuracy at the epoch of "
            "minimum validation loss (the paper's early-stop criterion). "
            f"Seeds: {seeds} (mean ± std over seeds)."
            + (f" Command: `{results['command']}`." if results.get("command") else ""), "",
            "Controls: *reinit* keeps each ticket's structure and draws fresh weights from the initial "
            "distribution; *random* removes as many weights per layer each round as IMP does, chosen at random, "
            "survivors reset to their initial values.", "",
            "Speed of learning: the early-stop iteration is the paper's (the iteration of minimum validation loss, "
            "read every epoch); beside it, the first iteration whose validation loss is within 10% of that "
            "minimum, which a flat loss tail does not move.", ""]
    for task in dict.fromkeys(r["task"] for r in rows):
        task_rows = [r for r in rows if r["task"] == task]
        slug = _slug(task)
        n_weights = task_rows[0]["metrics"]["n_weights"]
        text += [f"## {task}", "", f"Data: {_task_text(task, task_rows, cfg)}. {n_weights} weights.", "",
                 *summary(data[task], labels=labels), "", "### Accuracy vs weights remaining", "",
                 level_table(data[task]), "",
                 "### Iterations to the early stop", "", speed_table(data[task]), "",
                 f"![accuracy vs weights remaining]({slug}.png)", ""]
        plot(data[task], out_dir / f"{slug}.png", labels)
    write_text(out_dir / "report.md", "\n".join(text))
