"""report.md and plots for the NEAT experiments: solve rate, generations, evaluations, sizes,
ours beside neat-python (when it ran) and the paper's figures; fitness and network size over
generations; a drawing of seed 0's best network."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..report import markdown_table, pm, save_figure, saved_net, write_text

ORDER = ["neuroplastic", "neat-python"]


def _by_variant(rows) -> dict:
    out: dict = {}
    for row in rows:
        out.setdefault(row["variant"], []).append(row["metrics"])
    return dict(sorted(out.items(), key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else 9))


def _fmt(values, digits=1) -> str:
    values = [v for v in values if v is not None]
    return pm(values, digits) if values else "–"


def results_table(rows, paper: dict | None, eval_episodes: int = 100) -> str:
    table = []
    env = any("return_mean" in m for ms in _by_variant(rows).values() for m in ms)
    validated = any("validations" in m for ms in _by_variant(rows).values() for m in ms)
    for variant, ms in _by_variant(rows).items():
        solved = [m for m in ms if m["solved"]]
        gens = [m["generations"] for m in solved]
        # a control task is judged on held-out episodes, so every run's best genome is shown
        sized = ms if env else solved
        line = [variant, len(ms), f"{len(solved)}/{len(ms)} ({100 * len(solved) / len(ms):.0f}%)",
                _fmt(gens), f"{np.median(gens):.0f}" if gens else "–",
                _fmt([m["evaluations"] for m in solved], 0), _fmt([m["n_hidden"] for m in sized], 2),
                _fmt([m["n_edges"] for m in sized], 2), _fmt([m["best_fitness"] for m in ms], 3),
                _fmt([m["ms_per_generation"] for m in ms], 1)]
        if validated:
            line += [_fmt([m.get("validations") for m in ms], 1), _fmt([m.get("validation_return") for m in ms], 1)]
        if env:
            line.append(_fmt([m.get("return_mean") for m in ms], 1))
        table.append(line)
    if paper:
        table.append([f"paper (2002, {paper['runs']} runs)", paper["runs"], f"{paper['solved']}/{paper['runs']}",
                      f"{paper['generations']} (mean)", "–", f"{paper['evaluations']:,} (mean)",
                      f"{paper['n_hidden']} (mean)", f"{paper['n_edges']} (mean)", "–", "–"]
                     + [""] * (2 * validated + env))
    headers = ["variant", "seeds", "solved", "generations (solved runs)", "median", "evaluations (solved runs)",
               "hidden nodes (best genome)", "enabled connections", "best fitness (all runs)", "ms / generation"]
    headers += ["genomes validated", "validation return (exported genome)"] if validated else []
    return markdown_table(headers + ([f"held-out return ({eval_episodes} episodes)"] if env else []), table)


def _padded(histories, key) -> np.ndarray:
    """(runs, longest) values of history[key], each run held at its last value after it stops."""
    n = max(len(h) for h in histories)
    return np.array([[r[key] for r in h] + [h[-1][key]] * (n - len(h)) for h in histories], dtype=float)


def plot_history(rows, path: Path, task: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    hist = [r["metrics"]["history"] for r in rows if r["variant"] == "neuroplastic" and r["metrics"].get("history")]
    if not hist:
        return
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    panels = [("best_fitness", "best fitness"), ("mean_fitness", "mean fitness")], \
        [("mean_hidden", "mean hidden nodes"), ("mean_edges", "mean enabled connections")], [("species", "species")]
    for ax, keys in zip(axes, panels):
        for key, label in keys:
            values = _padded(hist, key)
            x = np.arange(values.shape[1])
            mean = values.mean(0)
            (line,) = ax.plot(x, mean, label=label)
            ax.fill_between(x, np.percentile(values, 25, 0), np.percentile(values, 75, 0),
                            color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title(f"{task}: fitness (mean over {len(hist)} seeds, band: quartiles; "
                      "a solved run holds its last value)", fontsize=8)
    axes[1].set_title("network size over the population", fontsize=8)
    axes[2].set_title("species", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_generations(rows, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for variant, ms in _by_variant(rows).items():
        gens = [m["generations"] for m in ms if m["solved"]]
        if gens:
            ax.hist(gens, bins=np.arange(0, max(gens) + 11, 10), alpha=0.5, label=f"{variant} ({len(gens)} solved)")
    ax.set_xlabel("generations to solve")
    ax.set_ylabel("runs")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.set_title("no run reached the fitness threshold", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _solved_rule(config: dict) -> str:
    if config.get("fitness") == "paper":
        return ("Fitness is the 2002 paper's, (4 - sum of |error|)**2 (maximum 16), and a run is solved in the "
                "first generation where a genome has every output on the right side of 0.5 (the paper's test). "
                "generations counts the generations before that one (NEAT 1.2.1 numbers the first generation 1, "
                "so the paper's 32 would be 31 here), evaluations count every genome up to the end of it, and "
                "hidden nodes and connections are the winner's (the fittest genome that passes).")
    rule = ("A run is solved when the config's fitness_criterion over the population reaches fitness_threshold "
            "(neat-python's rule); generations counts the generations before the one that met it (neat-python's "
            "numbering).")
    if config.get("validate_episodes"):
        from ..evolve.neat.envs import VALIDATION_SEED
        rule += (f" Here that is not enough: the best genome of a generation that meets the threshold must also "
                 f"average {config['validate_threshold']:g} over {config['validate_episodes']} validation episodes "
                 f"(reset seeds {VALIDATION_SEED}+, neither training nor held-out ones) to end the run, in both "
                 "implementations. "
                 "The exported genome is the one that passed, else the best validated one, else the fittest.")
    return rule


def write_report(results: dict, out_dir: Path, paper: dict | None = None, default_ini: str = "") -> None:
    from ..analysis.draw import draw_graph
    from .runner import job_name
    rows, config = results["rows"], results["config"]
    task = rows[0]["task"] if rows else "?"
    lines = [f"# {results['experiment']}: NEAT on {task}", ""]
    if results.get("command"):
        lines += ["Made by:", "", f"    {results['command']}", ""]
    package_file = f"neuroplastic/evolve/configs/{default_ini}" if default_ini else "the package default"
    seeds = config["seeds"]
    lines += [f"Config file: `{config.get('config') or package_file}`, "
              f"budget {config['generations']} generations, {seeds} seed{'s' if seeds != 1 else ''}"
              + (f", pop_size {config['pop_size']}" if config.get("pop_size") else "") + ". "
              + _solved_rule(config), "",
              results_table(rows, paper, config.get("eval_episodes", 100)), ""]
    versions = {m.get("neat_python") for r in rows for m in [r["metrics"]] if r["variant"] == "neat-python"}
    if versions:
        lines += [f"neat-python {', '.join(sorted(v for v in versions if v))} ran on the same INI file and fitness, "
                  "one genome at a time (its examples' way); ms / generation is each run's wall time over its "
                  "generations (evaluate + speciate + reproduce).", ""]
    elif config.get("fitness") == "paper":
        lines += ["No neat-python row: neat-python stops a run at a fitness threshold, not at the paper's test.", ""]
    elif not config.get("reference", True):
        lines += ["No neat-python row: the run was made with reference = false.", ""]
    else:
        lines += ["neat-python was not installed, so there is no reference row "
                  "(`pip install 'neuroplastic[neat]'`).", ""]
    plot_history(rows, out_dir / "history.png", task)
    plot_generations(rows, out_dir / "generations.png")
    lines += ["![fitness and size over generations](history.png)", "", "![generations to solve](generations.png)", ""]
    first = next((r for r in rows if r["variant"] == "neuroplastic"), None)
    net_path = out_dir / "nets" / f"{job_name(first)}.ckpt" if first else None
    net = saved_net(net_path) if net_path is not None else None
    if net is not None:
        draw_graph(net, out_dir / "network.png", title=f"{task}, seed {first['seed']}: best genome, "
                   f"{net.n_hidden} hidden, {net.n_edges} connections")
        lines += [f"Seed {first['seed']}'s best genome (exported GraphNet):", "", "![network](network.png)", ""]
    write_text(out_dir / "report.md", "\n".join(lines))
