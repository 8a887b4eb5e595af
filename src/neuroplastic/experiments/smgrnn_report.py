"""report.md and plots for the smgrnn experiment, including the paper's acceptance checks."""
from __future__ import annotations

from pathlib import Path

from ..report import group, markdown_table, mean_std, plot_curves, pm, write_text

SPM_VARIANTS = ("smgrnn", "growth-only", "growth-disabled", "static")


def _order(variants):
    from .smgrnn import VARIANTS
    return sorted(variants, key=lambda v: (VARIANTS.index(v) if v in VARIANTS else len(VARIANTS), v))


def summary_table(rows: list[dict]) -> str:
    ret = group(rows, "return_mean")
    ep_std = group(rows, "return_std")
    teacher = group(rows, "teacher_return_mean")
    params, hidden, edges = group(rows, "n_params"), group(rows, "n_hidden"), group(rows, "n_edges")
    wall = group(rows, "wall_s")
    table = []
    for task in sorted({t for t, _ in ret}):
        for variant in _order([v for t, v in ret if t == task]):
            k = (task, variant)
            t_mean = mean_std(teacher[k])[0]
            share = mean_std(ret[k])[0] / t_mean if t_mean > 0 else None
            table.append([task, variant, len(ret[k]), pm(ret[k]), pm(ep_std[k]),
                          f"{mean_std(teacher[k])[0]:.1f}", f"{share:.0%}" if share is not None else "–",
                          pm(params[k], 0), pm(hidden[k], 0), pm(edges[k], 0), f"{mean_std(wall[k])[0]:.0f}"])
    return markdown_table(["task", "variant", "seeds", "return (mean ± std over seeds)",
                           "episode std", "teacher", "% of teacher", "params", "hidden", "edges", "wall s"],
                          table)


def acceptance(rows: list[dict]) -> str:
    """The targets proposed in papers/smgrnn.md §5, evaluated on these numbers."""
    ret, params, ep_std = group(rows, "return_mean"), group(rows, "n_params"), group(rows, "return_std")
    teacher = group(rows, "teacher_return_mean")
    lines = []
    for task in sorted({t for t, _ in ret}):
        def have(v):
            return (task, v) in ret

        def m(d, v):
            return mean_std(d[(task, v)])[0]

        def s(d, v):
            return mean_std(d[(task, v)])[1]

        if not have("smgrnn"):
            continue
        t_ret = m(teacher, "smgrnn")
        # (a) return >= 90% of the teacher's (for negative returns: within 10% of |teacher|)
        target = t_ret - 0.1 * abs(t_ret)
        lines.append([task, "(a) SMGrNN return ≥ 90% of teacher",
                      f"{m(ret, 'smgrnn'):.1f} vs {target:.1f}", _ok(m(ret, "smgrnn") >= target)])
        mlps = [v for t, v in ret if t == task and v.startswith("mlp-")]
        if mlps:
            best = max(mlps, key=lambda v: m(ret, v))
            within = m(ret, "smgrnn") >= m(ret, best) - s(ret, best)
            lines.append([task, f"(b) within 1 std of best MLP ({best})",
                          f"{m(ret, 'smgrnn'):.1f} vs {m(ret, best):.1f} ± {s(ret, best):.1f}", _ok(within)])
            if have("mlp-64x64"):
                lines.append([task, "(b) fewer params than MLP 64-64",
                              f"{m(params, 'smgrnn'):.0f} vs {m(params, 'mlp-64x64'):.0f}",
                              _ok(m(params, "smgrnn") < m(params, "mlp-64x64"))])
        if have("growth-only"):
            ratio = m(params, "growth-only") / max(m(params, "smgrnn"), 1)
            lines.append([task, "(c) growth-only ≥ 10× SMGrNN params", f"{ratio:.1f}×", _ok(ratio >= 10)])
            close = abs(m(ret, "growth-only") - m(ret, "smgrnn")) <= max(0.05 * abs(t_ret), s(ret, "smgrnn"))
            lines.append([task, "(c) growth-only return similar (≤5% of teacher or 1 std)",
                          f"{m(ret, 'growth-only'):.1f} vs {m(ret, 'smgrnn'):.1f}", _ok(close)])
        if have("growth-disabled"):
            lines.append([task, "(d) growth-disabled seed std ≥ SMGrNN seed std",
                          f"{s(ret, 'growth-disabled'):.1f} vs {s(ret, 'smgrnn'):.1f}",
                          _ok(s(ret, "growth-disabled") >= s(ret, "smgrnn"))])
            lines.append([task, "(d) growth-disabled episode std ≥ SMGrNN episode std",
                          f"{m(ep_std, 'growth-disabled'):.1f} vs {m(ep_std, 'smgrnn'):.1f}",
                          _ok(m(ep_std, "growth-disabled") >= m(ep_std, "smgrnn"))])
    return markdown_table(["task", "claim", "ours", "holds"], lines) if lines else "(no SMGrNN rows)"


def _ok(flag: bool) -> str:
    return "yes" if flag else "**no**"


def structure_table(rows: list[dict]) -> str:
    table = []
    for key in ("relays_total", "random_edges_total", "pruned_edges_total", "removed_neurons_total"):
        g = group(rows, key)
        for (task, variant), values in sorted(g.items()):
            if variant in SPM_VARIANTS:
                table.append([task, variant, key.replace("_total", ""), pm(values, 0)])
    return markdown_table(["task", "variant", "structural event", "count per run"], table)


def draw_networks(rows: list[dict], out_dir: Path) -> list[str]:
    from ..analysis import draw_graph
    from ..core.checkpoint import load
    from .runner import job_name
    drawn = []
    for row in rows:
        if row["variant"] != "smgrnn" or row["seed"] != 0:
            continue
        path = out_dir / "nets" / f"{job_name(row)}.ckpt"
        if path.exists():
            name = f"network_{row['task']}.png"
            net = load(path)["net"]
            draw_graph(net, out_dir / name, title=f"{row['task']} SMGrNN seed 0: {net.n_hidden} hidden, "
                                                   f"{net.n_edges} edges, {net.n_params} params")
            drawn.append(name)
    return drawn


def write_report(results: dict, out_dir: Path) -> None:
    rows = results["rows"]
    cfg = results["config"]
    plot_curves(rows, "return", "return (held-out episodes)", out_dir / "return_vs_step.png")
    plot_curves(rows, "n_params", "parameters", out_dir / "params_vs_step.png", log=True)
    plot_curves(rows, "n_hidden", "hidden neurons", out_dir / "hidden_vs_step.png",
                variants=list(SPM_VARIANTS))
    plot_curves(rows, "n_edges", "edges", out_dir / "edges_vs_step.png", log=True)
    drawings = draw_networks(rows, out_dir)
    env = results.get("environment", {})
    text = [
        "# SMGrNN policy distillation",
        "",
        f"Tasks: {', '.join(cfg['envs'])}. Variants: {', '.join(cfg['variants'])}. "
        f"Seeds: {cfg['seeds']}. Budget: {cfg['steps']} Adam steps (lr {cfg['lr']}, batch "
        f"{cfg['batch_size']}) on {cfg['n_data']}+ teacher transitions; final return over "
        f"{cfg['eval_episodes']} held-out episodes per seed.",
        f"Machine: {env.get('machine', '?')}, torch {env.get('torch', '?')}."
        + (f" Command: `{results['command']}`." if results.get("command") else ""),
        "",
        "## Returns and sizes",
        "",
        "Return: mean ± std across seeds of each seed's mean held-out return. Episode std: the",
        "std across held-out episodes within a seed, averaged over seeds. Params count live edges",
        "plus biases (GraphNet) or all weights and biases (MLP).",
        "",
        summary_table(rows),
        "",
        "## The paper's claims, checked on these numbers",
        "",
        acceptance(rows),
        "",
        "## Structural activity",
        "",
        structure_table(rows),
        "",
        "## Plots",
        "",
        "![return](return_vs_step.png)",
        "",
        "![params](params_vs_step.png)",
        "",
        "![hidden](hidden_vs_step.png)",
        "",
        "![edges](edges_vs_step.png)",
        "",
    ]
    text += [f"![{d}]({d})\n" for d in drawings]
    write_text(out_dir / "report.md", "\n".join(text))
