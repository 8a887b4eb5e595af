"""report.md and plots for the den experiment: per task sequence, average accuracy after the
sequence, forgetting and size of every learner, DEN's growth, and accuracy on each task over
the sequence."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..report import markdown_table, pm, save_figure, variant_colors, write_text

VARIANTS = ("den", "finetune", "ewc", "per-task")
LABELS = {"den": "DEN", "finetune": "fine-tuning", "ewc": "EWC", "per-task": "a network per task"}


def _ordered(values) -> list[str]:
    values = list(dict.fromkeys(values))
    return [v for v in VARIANTS if v in values] + [v for v in values if v not in VARIANTS]


def summary_table(rows: list) -> str:
    variants = _ordered(r["variant"] for r in rows)
    stl = [r["metrics"]["n_params"] for r in rows if r["variant"] == "per-task"]
    table = []
    for v in variants:
        ms = [r["metrics"] for r in rows if r["variant"] == v]
        size = np.mean([m["n_params"] for m in ms])
        row = [LABELS.get(v, v), pm([100 * m["test_accuracy"] for m in ms]), pm([100 * m["forgetting"] for m in ms]),
               pm([100 * m["just_learnt_accuracy"] for m in ms]), f"{size:,.0f}",
               f"{100 * size / np.mean(stl):.0f}%" if stl else ""]
        if v == "den":
            row.append(f"{np.mean([m['expansions'] for m in ms]):.1f} expansions, "
                       f"{np.mean([m['splits'] for m in ms]):.1f} units split; units per layer "
                       + " / ".join(f"{np.mean(u):.0f}" for u in zip(*[m["units"] for m in ms])))
        else:
            row.append("")
        table.append(row)
    return markdown_table(["learner", "avg. accuracy % after the sequence", "forgetting (pp)",
                           "accuracy % right after learning each task", "parameters",
                           "size vs a net per task", "structure"], table)


def den_table(rows: list) -> str:
    den = [r for r in rows if r["variant"] == "den"]
    if not den:
        return ""
    table = []
    for r in den:
        for h in r["metrics"]["history"]:
            table.append([r["seed"], h["task"], h.get("selected", ""), f"{h.get('expansion_loss', h['loss']):.4f}",
                          "yes" if h["expanded"] else "no", "+".join(map(str, h["added"])), h["removed_new"],
                          h["split"], " / ".join(map(str, h["units"])), f"{h['n_params']:,}"])
    return markdown_table(["seed", "task", "units selected (S)", "loss after selective retraining", "expanded",
                           "units added per layer", "new units removed", "units split", "units per layer",
                           "parameters"], table)


def plot(rows: list, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    variants = _ordered(r["variant"] for r in rows)
    colors = variant_colors(list(VARIANTS))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for v in variants:
        ms = [r["metrics"] for r in rows if r["variant"] == v]
        acc = np.array([m["acc_matrix"] for m in ms], dtype=float)     # (seeds, T, T)
        n = acc.shape[1]
        avg = np.array([[np.nanmean(a[t, : t + 1]) for t in range(n)] for a in acc])
        x = np.arange(1, n + 1)
        axes[0].plot(x, 100 * avg.mean(0), marker="o", ms=3, color=colors.get(v), label=LABELS.get(v, v))
        final = 100 * acc[:, -1, :]
        axes[1].plot(x, final.mean(0), marker="o", ms=3, color=colors.get(v), label=LABELS.get(v, v))
    axes[0].set_xlabel("tasks learnt")
    axes[0].set_ylabel("mean accuracy % over the tasks seen")
    axes[1].set_xlabel("task")
    axes[1].set_ylabel("accuracy % after the whole sequence")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_report(results: dict, out_dir: Path) -> None:
    rows, cfg = results["rows"], results["config"]
    seeds = len({r["seed"] for r in rows})
    text = [f"# {results['experiment']}", "",
            f"Data: {cfg['data']} (digits and .npz files: a stratified 75% / 25% split per seed; MNIST IDX: its "
            "train and t10k files), standardised on the training part. Every learner starts from an MLP "
            f"in-{'-'.join(map(str, cfg['hidden']))} (ReLU) with one output head per task and sees one task's "
            f"training data at a time; {cfg['epochs']} epochs of Adam (lr {cfg['lr']}, batch {cfg['batch_size']}) per "
            "training phase. DEN: selective retraining (L1 head fit, breadth-first subnetwork, L2 retraining), "
            f"expansion by k = {cfg['k']} units a layer when the training loss stays above τ = {cfg['loss_threshold']} "
            f"(group lasso {cfg['group_lasso']}, L1 {cfg['l1']} per step, proximal), split of units drifting more than "
            f"σ = {cfg['drift_threshold']} (drift penalty {cfg['drift_penalty']}), timestamped inference. EWC: "
            f"λ = {cfg['ewc_lambda']}, diagonal empirical Fisher from {cfg['fisher_samples']} samples. "
            f"Seeds: {seeds} (mean ± std over seeds)."
            + (f" Command: `{results['command']}`." if results.get("command") else ""), "",
            "Forgetting: mean over the tasks before the last of (best accuracy on the task before the end − "
            "accuracy after the sequence). Parameters: weights and biases the learner holds after the sequence "
            "(DEN: its live edges, hidden units and heads).", ""]
    for seq in dict.fromkeys(r["task"] for r in rows):
        seq_rows = [r for r in rows if r["task"] == seq]
        n_tasks = seq_rows[0]["metrics"]["n_tasks"]
        text += [f"## {seq} ({n_tasks} tasks)", "", summary_table(seq_rows), "",
                 f"![accuracy over the sequence]({seq}.png)", ""]
        if any(r["variant"] == "den" for r in seq_rows):
            text += ["### DEN, task by task", "", den_table(seq_rows), ""]
        plot(seq_rows, out_dir / f"{seq}.png")
    write_text(out_dir / "report.md", "\n".join(text))
