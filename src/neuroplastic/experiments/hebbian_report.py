"""report.md and plots for the Hebbian experiment: held-out returns of the evolved rule beside
the evolved static weights, per task, and the ES's fitness over generations."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..report import markdown_table, pm, tasks_and_variants, variant_colors, write_text
from .goals import goal_return, goals_text
from .hebbian import VARIANTS


def results_table(rows, max_steps: int | None = None) -> str:
    tasks, variants = tasks_and_variants(rows, VARIANTS)
    table = []
    for task in tasks:
        for variant in variants:
            ms = [r["metrics"] for r in rows if r["task"] == task and r["variant"] == variant]
            if not ms:
                continue
            threshold = goal_return(task, max_steps)
            solved = "–" if threshold is None else f"{sum(m['return_mean'] >= threshold for m in ms)}/{len(ms)}"
            first = [first_generation(m["history"], threshold) for m in ms] if threshold is not None else []
            reached = [g for g in first if g is not None]
            first_text = "–" if threshold is None else \
                f"{pm(reached, 0)} ({len(reached)}/{len(ms)})" if reached else f"not reached (0/{len(ms)})"
            table.append([task, variant, len(ms), pm([m["return_mean"] for m in ms]),
                          f"{np.mean([m['return_std'] for m in ms]):.1f}",
                          pm([np.min(m["returns"]) for m in ms]), solved, first_text,
                          f"{ms[0]['n_params']:,}", f"{ms[0]['n_synapses']:,}", f"{ms[0]['evaluations']:,}",
                          pm([sum(g["wall_s"] for g in m["history"]) / 60 for m in ms])])
    return markdown_table(["task", "variant", "seeds", "held-out return (mean over seeds of the mean over episodes)",
                           "std over episodes", "worst episode", "seeds solved",
                           "first generation with a candidate there (seeds)", "evolved numbers", "synapses",
                           "episodes in evolution", "minutes of evolution"], table)


def first_generation(history, threshold: float):
    """The first generation with a candidate whose return (on its training episodes) reached
    threshold."""
    return next((g["step"] for g in history if g["best"] >= threshold), None)


def plot_fitness(rows, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..report import save_figure
    tasks, variants = tasks_and_variants(rows, VARIANTS)
    colors = variant_colors(variants)
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for variant in variants:
            hist = [r["metrics"]["history"] for r in rows if r["task"] == task and r["variant"] == variant]
            if not hist:
                continue
            n = min(len(h) for h in hist)
            for key, style in (("mean", "-"), ("best", ":")):
                values = np.array([[g[key] for g in h[:n]] for h in hist])
                ax.plot(np.arange(1, n + 1), values.mean(0), style, color=colors[variant],
                        label=f"{variant}, population {key}")
        ax.set_title(f"{task}: fitness over generations (mean over seeds)", fontsize=9)
        ax.set_xlabel("generation")
        ax.set_ylabel("return (training episodes)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_report(results: dict, out_dir: Path) -> None:
    rows, config = results["rows"], results["config"]
    lines = ["# hebbian: evolved ABCD rules vs evolved static weights", ""]
    if results.get("command"):
        lines += ["Made by:", "", f"    {results['command']}", ""]
    tasks, _ = tasks_and_variants(rows, VARIANTS)
    layers = f"{config['hidden']} tanh -> " if config["hidden"] else ""
    lines += [f"Solved: the held-out mean at or above the task's goal ({goals_text(tasks, config.get('max_steps'))}; "
              "experiments/goals.py; none when max_steps cuts episodes short).", "",
              f"Network: inputs -> {layers}linear outputs, no biases. ES: sep-CMA-ES, "
              f"population {config['popsize']}, σ₀ {config['sigma']}, {config['generations']} generations, "
              f"{config['episodes']} episode(s) per candidate and generation (the same ones for every candidate). "
              f"The Hebbian network's weights start U(-{config['init']}, {config['init']}) in every episode and change "
              f"only by the evolved rule (normalise: {config['normalise']}); the static network's weights are "
              "what the ES evolves. Held-out: the final ES mean on "
              f"{config['eval_episodes']} episodes with env seeds 10000+ (and, for Hebbian networks, fresh random "
              "initial weights), the same episodes for both variants.", "",
              results_table(rows, config.get("max_steps")), ""]
    plot_fitness(rows, out_dir / "fitness.png")
    lines += ["![fitness over generations](fitness.png)", ""]
    write_text(out_dir / "report.md", "\n".join(lines))
