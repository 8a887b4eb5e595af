"""report.md and plots for the URN experiments.

What the report needs to know of a variant (its settings, parsed from its name by the
experiment) it takes as an argument."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..report import markdown_table, mean_std, pm, save_figure, section, write_text


def _by_variant(rows):
    out = {}
    for row in rows:
        out.setdefault((row["task"], row["variant"]), []).append(row["metrics"])
    return out


def _fmt(values, digits=2):
    values = [v for v in values if v is not None]
    return pm(values, digits) if values else "–"


def structure_table(rows) -> str:
    table = []
    for (task, variant), ms in sorted(_by_variant(rows).items()):
        s = [m["structure"] for m in ms]
        table.append([task, variant, len(ms), _fmt([m["test_accuracy"] for m in ms], 3),
                      _fmt([x["active_neurons"] for x in s], 0), _fmt([x["depth"] for x in s], 1),
                      " / ".join(str(x["widths"]) for x in s), _fmt([x["mlp_score"] for x in s]),
                      _fmt([x["skip_share"] for x in s]), _fmt([x["self_loop_share"] for x in s]),
                      _fmt([x["lateral_share"] for x in s]), _mlp_count(s)])
    return markdown_table(["data", "variant", "seeds", "test accuracy", "active neurons", "depth", "widths",
                           "MLP score", "skip share", "self-loop share", "lateral share", "pure MLP"], table)


def _mlp_count(structures) -> str:
    """'2 of 3 seeds': how many runs the detector calls a pure MLP."""
    n, hits = len(structures), sum(bool(x["is_mlp"]) for x in structures)
    if n == 1:
        return "yes" if hits else "no"
    return f"{hits} of {n} seeds"


def locality_table(rows) -> str:
    table = []
    for (task, variant), ms in sorted(_by_variant(rows).items()):
        s = [m["structure"] for m in ms]
        if all(x["locality_radius"] is None for x in s):
            if any(m.get("has_positions") for m in ms):
                table.append([task, variant, "– (first layer has no multi-pixel field)", "–", "–"])
            continue
        table.append([task, variant, _fmt([x["locality_radius"] for x in s]),
                      _fmt([x["locality_radius_control"] for x in s]), _fmt([x["locality_index"] for x in s])])
    return markdown_table(["data", "variant", "receptive-field radius (px)", "shuffled control (px)",
                           "locality index"], table) if table else ""


def compaction_table(rows) -> str:
    table = []
    for (task, variant), ms in sorted(_by_variant(rows).items()):
        table.append([task, variant, _fmt([m["edges_before_compaction"] for m in ms], 0),
                      _fmt([m["n_edges"] for m in ms], 0), _fmt([m["epoch_s_dense"] for m in ms], 3),
                      _fmt([m["epoch_s_compacted"] for m in ms], 3), _fmt([m["compaction_speedup"] for m in ms], 1),
                      _fmt([m["test_accuracy"] - m["test_accuracy_compacted"] for m in ms], 3)])
    return markdown_table(["data", "variant", "edges before", "edges after", "s/epoch dense",
                           "s/epoch compacted", "speed-up", "accuracy lost"], table)


def export_table(rows) -> str:
    table = [[r["task"], r["variant"], r["seed"], r["metrics"]["sequential_widths"],
              f"{r['metrics']['test_accuracy']:.3f}",
              f"{r['metrics'].get('sequential_test_accuracy', float('nan')):.3f}",
              f"{r['metrics'].get('sequential_agreement', float('nan')):.3f}",
              f"{r['metrics']['sequential_max_abs_diff']:.2e}"] for r in rows if "sequential_widths" in r["metrics"]]
    return markdown_table(["data", "variant", "seed", "exported widths", "URN accuracy", "Sequential accuracy",
                           "same decision", "max |logit difference|"], table) \
        if table else "No run was detected as a pure MLP, so none was exported."


def phase_plot(rows, path: Path, variant_settings: dict) -> bool:
    """Depth and skip share over the (c_weight, steps) grid of urn-sweep; `variant_settings`
    maps each variant to the settings it overrides."""
    cells = {}
    for (_task, variant), ms in _by_variant(rows).items():
        v = variant_settings.get(variant, {})
        if set(v) == {"c_weight", "steps"}:  # the grid; variants that also set c_activity are rows only
            cells[(v["c_weight"], v["steps"])] = ms
    if len(cells) < 2:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cws, steps = sorted({c for c, _ in cells}), sorted({s for _, s in cells})
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, label in zip(axes, ("depth", "active_neurons", "skip_share"),
                              ("emergent depth", "active neurons", "skip share")):
        grid = np.full((len(cws), len(steps)), np.nan)
        for (c, s), ms in cells.items():
            vals = [m["structure"][key] for m in ms if m["structure"][key] is not None]
            if vals:
                grid[cws.index(c), steps.index(s)] = mean_std(vals)[0]
        im = ax.imshow(grid, cmap="viridis", aspect="auto")
        for i in range(len(cws)):
            for j in range(len(steps)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2g}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xticks(range(len(steps)), [str(s) for s in steps])
        ax.set_yticks(range(len(cws)), [f"{c:g}" for c in cws])
        ax.set_xlabel("sweeps I")
        ax.set_ylabel("c_weight")
        ax.set_title(label)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return True


ABLATIONS = (("non_layered", "all non-layered"), ("self_loops", "self loops"), ("skips", "skips"),
             ("lateral_and_backward", "lateral and backward"))


def ablation_table(rows) -> str:
    table = []
    for r in rows:
        cut = r["metrics"].get("accuracy_without")
        if cut:
            table.append([r["task"], r["variant"], r["seed"], f"{r['metrics']['test_accuracy']:.3f}"]
                         + [f"{cut[k]['test_accuracy']:.3f} ({cut[k]['edges']})" for k, _ in ABLATIONS])
    return markdown_table(["data", "variant", "seed", "URN accuracy"]
                          + [f"without {label} (edges cut)" for _, label in ABLATIONS], table) if table else ""


def time_table(rows) -> str:
    """Per run: wall time, the seconds of its first (dense) epoch and of all epochs, and how
    many epochs passed before lifetime compaction left under 1% of the initial edges."""
    table = []
    for r in rows:
        m = r["metrics"]
        hist = m.get("history") or []
        if not hist or "wall_s" not in m:
            continue
        first = hist[0]["n_edges"]
        sparse_at = next((h["step"] for h in hist if h["n_edges"] < 0.01 * first), None)
        table.append([r["task"], r["variant"], r["seed"],
                      f"{m.get('epoch_s_total', sum(h['epoch_s'] for h in hist)) / 60:.1f}",
                      f"{hist[0]['epoch_s']:.0f}", f"{first:,}", "–" if sparse_at is None else sparse_at,
                      f"{m['wall_s'] / 60:.1f}"])
    return markdown_table(["data", "variant", "seed", "all epochs (minutes)", "first epoch (s)", "initial edges",
                           "first epoch under 1% of them", "wall minutes of the last attempt"], table) \
        if table else ""


def write_report(results: dict, out_dir: Path, variant_settings: dict) -> None:
    """report.md (and the phase diagram) from results.json's content; `variant_settings`:
    {variant: the settings it overrides}, e.g. {'c_weight=1e-3,steps=3': {'c_weight': 0.001, 'steps': 3}}."""
    rows, cfg = results["rows"], results["config"]
    text = [f"# {results['experiment']}", "",
            f"Data: {cfg['data']}. S = {cfg['size']} neurons, I = {cfg['steps']} sweeps (unless a variant "
            f"sets them), {cfg['epochs']} epochs of Adam (lr {cfg['lr']}, batch {cfg['batch_size']}), "
            f"regulators ramped in over {cfg['ramp_epochs']} epochs: c_weight {cfg['c_weight']}, "
            f"c_activity {cfg['c_activity']}, c_local {cfg['c_local']}. Seeds: {cfg['seeds']}."
            + (f" Command: `{results['command']}`." if results.get("command") else ""), "",
            "## Emergent structure", "",
            "Detectors (`npl.analysis.structure`): layer = first sweep at which the activity the test data",
            "causes (beyond what the biases alone produce) reaches 10% of its peak; MLP score = share of",
            "live |W| on layer k -> k+1 edges; skip share = edges skipping layers plus self loops; lateral",
            "share = the rest (edges within or back to earlier layers). Pure MLP: how many seeds the",
            "detector calls a pure MLP (MLP score >= 0.95, no empty layer, and depth = I - 1).", "",
            structure_table(rows), ""]
    text += section("Locality of first-layer receptive fields", [
        "Radius: median over first-layer neurons of the |w|-weighted RMS distance of their input",
        "weights from their centroid; control: the same with pixel positions shuffled;",
        "index = 1 - radius / control (0: no locality)."], locality_table(rows))
    text += ["## Export of emergent MLPs", "", export_table(rows), ""]
    text += section("What the function needs beyond the layers", [
        "Test accuracy of the trained net with one kind of edge between active neurons removed",
        "(layers as detected above; inputs are layer 0, outputs the last). The MLP score weighs",
        "these edges by their |w| mass; this weighs them by what the computation needs."], ablation_table(rows))
    text += ["## Compaction (dead edges and neurons removed through apply_edits)", "", compaction_table(rows), ""]
    text += section("Training time", [
        "One CPU thread per run. An epoch's seconds are its training steps; all epochs include",
        "those an interrupted attempt ran before the run resumed from its epoch checkpoint; the",
        "last attempt's wall time adds the evaluation."], time_table(rows))
    if phase_plot(rows, out_dir / "phase_diagram.png", variant_settings):
        text += ["## Phase diagram", "", "![phase](phase_diagram.png)", ""]
    text += [f"![W]({p.name})\n" for p in sorted(out_dir.glob("W_*.png"))]
    write_text(out_dir / "report.md", "\n".join(text))
