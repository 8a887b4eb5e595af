"""report.md and plots for the gng experiment: tables over seeds, the learned graphs drawn over
their data, units / edges / quantisation error over the signals. What the report needs of the
experiment (the variant order, the points of a data set) it takes as arguments."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..report import (
    markdown_table,
    mean_std,
    plot_curves,
    pm,
    save_figure,
    tasks_and_variants,
    variant_colors,
    write_text,
)


def _by(rows) -> dict:
    out: dict = {}
    for row in rows:
        out.setdefault((row["task"], row["variant"]), []).append(row)
    return out


def quality_table(rows, variant_order) -> str:
    by = _by(rows)
    tasks, variants = tasks_and_variants(rows, variant_order)
    table = []
    for task in tasks:
        for variant in variants:
            rs = by.get((task, variant))
            if not rs:
                continue
            m = [r["metrics"] for r in rs]
            table.append([task, variant, len(rs), pm([x["quantization_error"] for x in m], 4),
                          pm([x["topographic_error"] for x in m], 3), pm([x["n_nodes"] for x in m], 0),
                          pm([x["n_edges"] for x in m], 0), pm([x["components"] for x in m], 1),
                          pm([x["cycles"] for x in m], 1), f"{mean_std([x['signals_per_s'] for x in m])[0]:,.0f}"])
    return markdown_table(["data", "variant", "seeds", "QE (test)", "TE (test)", "units", "edges", "components",
                           "cycles", "signals/s"], table)


def fidelity_table(rows) -> str:
    """Batched against sequential GNG, paired by data set and seed."""
    seq = {(r["task"], r["seed"]): r["metrics"] for r in rows if r["variant"] == "gng-sequential"}
    pairs: dict = {}
    for r in rows:
        if r["variant"] == "gng-batched" and (r["task"], r["seed"]) in seq:
            pairs.setdefault(r["task"], []).append((r["metrics"], seq[(r["task"], r["seed"])]))
    table = []
    for task, ps in pairs.items():
        # relative to the sequential QE, which is 0 on data a unit can sit on exactly (one point repeated)
        rel = [100 * (b["quantization_error"] - s["quantization_error"]) / s["quantization_error"]
               for b, s in ps if s["quantization_error"] > 0]
        table.append([task, len(ps), pm([s["quantization_error"] for _, s in ps], 4),
                      pm([b["quantization_error"] for b, _ in ps], 4), pm(rel, 2) if rel else "n/a (QE 0)",
                      pm([b["topographic_error"] - s["topographic_error"] for b, s in ps], 3),
                      pm([b["n_edges"] - s["n_edges"] for b, s in ps], 1),
                      f"{np.mean([b['signals_per_s'] / s['signals_per_s'] for b, s in ps]):.1f}x"])
    if not table:
        return ""
    return markdown_table(["data", "seeds", "QE sequential", "QE batched", "QE difference (%)",
                           "TE difference", "edge difference", "speed (batched / sequential)"], table)


def graph_plot(rows, variants, points, path: Path) -> bool:
    """One panel per data set (rows) and variant (columns): the seed-0 graph over its training
    points. Only for 2-D data."""
    by = _by(rows)
    tasks = [t for t in dict.fromkeys(r["task"] for r in rows)
             if any(len(r["metrics"]["graph"]["nodes"][0]) == 2 for r in rows if r["task"] == t
                    and r["metrics"]["graph"]["nodes"])]
    if not tasks:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = variant_colors(variants)
    fig, axes = plt.subplots(len(tasks), len(variants), figsize=(3.2 * len(variants), 3.2 * len(tasks)),
                             squeeze=False)
    for i, task in enumerate(tasks):
        for j, variant in enumerate(variants):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            rs = sorted(by.get((task, variant), []), key=lambda r: r["seed"])
            if not rs:
                ax.axis("off")
                continue
            row = rs[0]
            train, _ = points(task, row["seed"])
            ax.scatter(train[:, 0], train[:, 1], s=2, color="0.75", linewidths=0)
            nodes = np.asarray(row["metrics"]["graph"]["nodes"])
            edges = np.asarray(row["metrics"]["graph"]["edges"], dtype=int).reshape(-1, 2)
            if len(edges):
                from matplotlib.collections import LineCollection
                ax.add_collection(LineCollection(nodes[edges], colors=[colors[variant]], linewidths=0.9))
            ax.scatter(nodes[:, 0], nodes[:, 1], s=9, color=colors[variant], zorder=3)
            m = row["metrics"]
            ax.set_title(f"{task} · {variant}\n{m['n_nodes']} units, {m['n_edges']} edges, "
                         f"QE {m['quantization_error']:.3f}", fontsize=8)
            ax.set_aspect("equal")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return True


def write_report(results: dict, out_dir: Path, variant_order: list[str], points) -> None:
    """report.md and PNGs; `points(task, seed)` gives the (train, test) points of a data set."""
    rows, cfg = results["rows"], results["config"]
    _, variants = tasks_and_variants(rows, variant_order)
    colors = variant_colors(variants)
    text = [f"# {results['experiment']}", "",
            f"Data: {', '.join(cfg['data'])}; {cfg['n_train']} training and {cfg['n_test']} test points each "
            f"(a FILE.npz's rows are split in that proportion), drawn from one distribution per seed. "
            f"Up to {cfg['max_nodes']} units, {cfg['epochs']} epochs "
            f"(shuffled passes). GNG (Fritzke 1995): eps_b {cfg['eps_b']}, eps_n {cfg['eps_n']}, a_max "
            f"{cfg['a_max']}, λ {cfg['lam']}, alpha {cfg['alpha']}, d {cfg['d']}; batched mode batch size "
            f"{cfg['batch_size']}. DCS: its defaults (eps_b 0.05, eps_n 0.005, link threshold 0.001, resource "
            f"decay 0.95), the same λ, and link decay 0.001^(1/training points) (a link not refreshed for "
            f"one epoch vanishes). Seeds: {cfg['seeds']}."
            + (f" Command: `{results['command']}`." if results.get("command") else ""), "",
            "QE: mean Euclidean distance of a test point to its nearest unit. TE: share of test points whose",
            "nearest and second-nearest units share no edge. Cycles: independent cycles of the graph",
            "(edges - units + components; a ring is 1). signals/s: training signals per second of this run.", "",
            "## Quality of the learned graphs", "", quality_table(rows, variant_order), ""]
    fidelity = fidelity_table(rows)
    if fidelity:
        text += ["## Batched against sequential GNG", "",
                 "Paired by data set and seed (same data, same initial units): the relative difference of",
                 "the batched mode's test QE from the sequential mode's, and the differences of TE and edges.",
                 "", fidelity, ""]
    if graph_plot(rows, variants, points, out_dir / "graphs.png"):
        text += ["## The learned graphs (seed 0)", "", "![graphs](graphs.png)", ""]
    for key, label, name in (("n_nodes", "units", "nodes_vs_step.png"), ("n_edges", "edges", "edges_vs_step.png"),
                             ("qe", "QE (training points)", "qe_vs_step.png")):
        plot_curves(rows, key, label, out_dir / name, log=key == "qe", variants=variants, colors=colors)
        text += [f"![{label}]({name})", ""]
    write_text(out_dir / "report.md", "\n".join(text))
