"""report.md and plots for the self-editing experiment: held-out returns and sizes of the
self-editing controller beside the static network of its final size and NEAT; best and mean
fitness over generations; the self-built networks' size over an episode; a drawing of a
final self-built network."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..report import markdown_table, pm, save_figure, saved_net, write_text
from .goals import goal_return

ORDER = ["self-editing", "static", "neat"]


def _rows_of(rows, task):
    out = [r for r in rows if r["task"] == task]
    return sorted(out, key=lambda r: (ORDER.index(r["variant"]) if r["variant"] in ORDER else 9, r["seed"]))


def _fmt(values, digits=1) -> str:
    values = [v for v in values if v is not None]
    return pm(values, digits) if values else "–"


def results_table(rows, max_steps: int | None = None) -> str:
    table = []
    for variant in [v for v in ORDER if any(r["variant"] == v for r in rows)]:
        rs = [r for r in rows if r["variant"] == variant]
        ms = [r["metrics"] for r in rs]
        goals = [goal_return(r["task"], max_steps) for r in rs]
        table.append([variant, len(ms), _fmt([m["return_mean"] for m in ms]),
                      _fmt([m["return_std"] for m in ms]),
                      f"{sum(m['return_mean'] >= g for g, m in zip(goals, ms))}/{len(ms)}"
                      if None not in goals else "–",
                      _fmt([m["n_hidden"] for m in ms], 1), _fmt([m.get("n_hidden_connected") for m in ms], 1),
                      _fmt([m["n_edges"] for m in ms], 1),
                      _fmt([m["n_params"] for m in ms], 0), _fmt([m["generations"] for m in ms], 0),
                      _fmt([m["evaluations"] for m in ms], 0), _fmt([m["wall_s"] for m in ms], 0)])
    n = max(len(r["metrics"].get("returns", [])) for r in rows)
    headers = ["variant", "seeds", f"held-out return (mean of {n} episodes)", "std over episodes",
               "solved (mean >= goal)",
               "hidden neurons (final)", "of them wired in and out", "edges (final)", "evolved parameters",
               "generations", "episodes played in training", "wall s"]
    return markdown_table(headers, table)


def edit_cost(rows) -> str:
    lines = []
    for r in rows:
        m = r["metrics"]
        hist = [h for h in m.get("history", []) if "edit_s" in h]
        if r["variant"] != "self-editing" or not hist:
            continue
        edit = np.array([h["edit_s"] for h in hist])
        wall = np.array([h["wall_s"] for h in hist])
        lines.append(f"- seed {r['seed']}: edit rounds took {1000 * edit.mean():.0f} ms of a generation's "
                     f"{1000 * wall.mean():.0f} ms on average ({100 * edit.sum() / wall.sum():.0f}%), "
                     f"{np.mean([h['edit_rounds'] for h in hist]):.0f} rounds a generation; the held-out "
                     f"rollout of {len(m['returns'])} episodes: {m['held_out_edit_rounds']} rounds, "
                     f"{m['held_out_edit_s']:.1f} s in edits of {m['eval_s']:.1f} s")
    return "\n".join(lines)


def _plot_fitness(rows, path: Path, task: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {"self-editing": "tab:red", "static": "tab:blue", "neat": "tab:green"}
    for r in rows:
        h = r["metrics"].get("history") or []
        if not h:
            continue
        x = [row["generation"] for row in h]
        c = colors.get(r["variant"], "gray")
        ax.plot(x, [row["best"] for row in h], color=c, label=f"{r['variant']} best (seed {r['seed']})")
        ax.plot(x, [row["mean"] for row in h], color=c, ls=":", label=f"{r['variant']} mean")
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness (mean return over the generation's episodes)")
    ax.set_title(task)
    ax.legend(fontsize=7)
    save_figure(fig, path)
    plt.close(fig)


def _plot_size(rows, path: Path, task: str) -> bool:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    traces = [r for r in rows if r["variant"] == "self-editing" and r["metrics"].get("size_trace")]
    if not traces:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in traces:
        t = r["metrics"]["size_trace"]
        steps = [p["step"] for p in t]
        ax.plot(steps, [p["hidden_mean"] for p in t], label=f"hidden neurons (seed {r['seed']})")
        ax.plot(steps, [p["edges_mean"] for p in t], ls="--", label=f"edges (seed {r['seed']})")
    ax.set_xlabel("env step within the episode")
    ax.set_ylabel("mean over the held-out episodes")
    ax.set_title(f"{task}: the self-built networks' size during an episode")
    ax.legend(fontsize=7)
    save_figure(fig, path)
    plt.close(fig)
    return True


def write_report(results: dict, out_dir: Path) -> None:
    from ..analysis.draw import draw_graph
    from ..core.batch import GraphBatch
    from .runner import job_name
    from .self_editing import connected_hidden
    rows = results["rows"]
    config = results["config"]
    parts = ["# self-editing: a network that edits its own graph\n"]
    if results.get("command"):
        parts.append(f"Command: `{results['command']}`\n")
    parts.append(f"Budget: ES popsize {config['popsize']}, up to {config['generations']} generations, "
                 f"{config['episodes']} episodes per candidate and generation; edit round every "
                 f"{config['edit_every']} steps, at most {config['max_hidden']} hidden neurons. Returns are "
                 f"over {config['eval_episodes']} held-out episodes (reset seeds 10000+), the same for every "
                 "variant.\n")
    for task in dict.fromkeys(r["task"] for r in rows):
        tr = _rows_of(rows, task)
        slug = task.replace("/", "_")
        parts.append(f"## {task}\n\n{results_table(tr, config.get('max_steps'))}\n")
        cost = edit_cost(tr)
        if cost:
            parts.append(f"What the edits cost (editor and applying its Edits, in-process):\n\n{cost}\n")
        _plot_fitness(tr, out_dir / f"fitness-{slug}.png", task)
        parts.append(f"![fitness]({f'fitness-{slug}.png'})\n")
        if _plot_size(tr, out_dir / f"size-{slug}.png", task):
            parts.append(f"![size over an episode](size-{slug}.png)\n")
        for r in tr:
            net = saved_net(out_dir / "nets" / f"{job_name(r)}.ckpt") if r["variant"] == "self-editing" else None
            if net is None:
                continue
            png = f"net-{slug}-seed{r['seed']}.png"
            wired = int(connected_hidden(GraphBatch.from_nets([net]))[0])
            draw_graph(net, out_dir / png, title=f"{task}, seed {r['seed']}: self-built network at the end of "
                                                 f"held-out episode 0 ({net.n_hidden} hidden, {wired} of them "
                                                 f"wired in and out, {net.n_edges} edges)")
            parts.append(f"![self-built network]({png})\n")
    write_text(out_dir / "report.md", "\n".join(parts))
