"""report.md and plots for the dcs experiment: test accuracy over seeds, size, curves."""
from __future__ import annotations

from pathlib import Path

from ..report import markdown_table, mean_std, plot_curves, pm, tasks_and_variants, variant_colors, write_text


def accuracy_table(rows, variant_order) -> str:
    by: dict = {}
    for row in rows:
        by.setdefault((row["task"], row["variant"]), []).append(row["metrics"])
    tasks, variants = tasks_and_variants(rows, variant_order)
    table = []
    for task in tasks:
        for variant in variants:
            ms = by.get((task, variant))
            if not ms:
                continue
            table.append([task, variant, len(ms), pm([m["test_accuracy"] for m in ms], 3),
                          pm([m["train_accuracy"] for m in ms], 3), f"{mean_std([m['chance'] for m in ms])[0]:.3f}",
                          pm([m["n_hidden"] for m in ms], 0), pm([m["n_params"] for m in ms], 0),
                          pm([m["train_s"] for m in ms], 1)])
    return markdown_table(["data", "variant", "seeds", "test accuracy", "train accuracy", "majority class",
                           "hidden units", "parameters", "train s"], table)


def write_report(results: dict, out_dir: Path, variant_order: list[str]) -> None:
    rows, cfg = results["rows"], results["config"]
    _, variants = tasks_and_variants(rows, variant_order)
    colors = variant_colors(variants)
    text = [f"# {results['experiment']}", "",
            f"Data: {', '.join(cfg['data'])}, a stratified {1 - cfg['test_fraction']:.0%} / "
            f"{cfg['test_fraction']:.0%} split per seed, features standardised on the training split. "
            f"DCS-GCS: up to {cfg['max_nodes']} units (at most {cfg['max_node_share']} of the training samples), "
            f"{cfg['epochs']} epochs, λ {cfg['lam']}, delta-rule step {cfg['eta']}, RBF width "
            f"{cfg['width_scale']} x the mean distance to the neighbours, eps_b {cfg['eps_b']}, eps_n "
            f"{cfg['eps_n']}, link decay {cfg['alpha']}, threshold {cfg['theta']}, resource decay {cfg['beta']}. "
            f"MLP: GraphNet.mlp with {cfg['hidden']} ReLU hidden units, {cfg['mlp_epochs']} epochs of Adam "
            f"(lr {cfg['lr']}, batch {cfg['batch_size']}). Seeds: {cfg['seeds']}."
            + (f" Command: `{results['command']}`." if results.get("command") else ""), "",
            "## Test accuracy", "", accuracy_table(rows, variant_order), "",
            "Majority class: the test accuracy of always answering the most frequent test class.", ""]
    plot_curves(rows, "test_accuracy", "test accuracy (x: epoch)", out_dir / "accuracy_vs_epoch.png",
                variants=variants, colors=colors)
    plot_curves([r for r in rows if r["variant"] == "dcs-gcs"], "n_nodes", "DCS-GCS units (x: epoch)",
                out_dir / "units_vs_epoch.png", variants=variants, colors=colors)
    text += ["![accuracy](accuracy_vs_epoch.png)", "", "![units](units_vs_epoch.png)", ""]
    write_text(out_dir / "report.md", "\n".join(text))
