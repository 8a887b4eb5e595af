"""Reports and plots: colours, legends, bands, keys, words, and where the claims come from."""
import dataclasses
import subprocess
import sys

import matplotlib
import pytest

matplotlib.use("Agg")

import neuroplastic as npl  # noqa: E402
from neuroplastic import report as report_module  # noqa: E402
from neuroplastic.cli import main  # noqa: E402
from neuroplastic.experiments import smgrnn_report  # noqa: E402
from neuroplastic.rules.spm import SPMConfig  # noqa: E402


def curve_row(variant, seed, returns, task="CartPole-v1", **metrics):
    history = [{"step": 100 * (i + 1), "return": r, "n_params": 100 + i, "n_hidden": 16 + i, "n_edges": 90 + i}
               for i, r in enumerate(returns)]
    return {"task": task, "variant": variant, "seed": seed, "metrics": {"history": history, **metrics}}


@pytest.fixture
def figures(monkeypatch):
    """Every figure the report code saves, kept open for inspection."""
    from neuroplastic.experiments import urn
    kept = []
    for module in (report_module, urn):
        monkeypatch.setattr(module, "save_figure", lambda fig, path, dpi=110: kept.append(fig))
    import matplotlib.pyplot as plt
    monkeypatch.setattr(plt, "close", lambda fig=None: None)
    yield kept
    for fig in kept:
        matplotlib.pyplot.close(fig)


def test_seed_band_of_a_return_plot_stays_within_the_returns_the_seeds_reached(figures, tmp_path):
    rows = [curve_row("smgrnn", 0, [500, 500, 500]), curve_row("smgrnn", 1, [400, 480, 500])]
    report_module.plot_curves(rows, "return", "return", tmp_path / "r.png")
    (band,) = figures[0].axes[0].collections
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.max() <= 500 and ys.min() >= 400


def test_legend_of_a_curve_plot_lies_outside_every_panel(figures, tmp_path):
    rows = [curve_row(v, 0, [1, 2, 3], task=t) for v in ("a", "b", "c") for t in ("T1", "T2")]
    report_module.plot_curves(rows, "return", "return", tmp_path / "r.png")
    fig = figures[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert all(not box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)


def test_each_variant_keeps_one_colour_in_every_plot_of_the_smgrnn_report(figures, tmp_path):
    rows = [curve_row(v, s, [400, 500], return_mean=500.0, return_std=0.0, teacher_return_mean=500.0,
                      n_params=100, n_hidden=16, n_edges=90, wall_s=1.0)
            for v in ("smgrnn", "growth-only", "static", "mlp-16") for s in (0, 1)]
    config = {"variants": ["smgrnn", "growth-only", "static", "mlp-16"], "steps": 200, "lr": 1e-3,
              "batch_size": 64, "n_data": 500, "eval_episodes": 5}
    smgrnn_report.write_report({"rows": rows, "config": config}, tmp_path, net_path=lambda row: tmp_path / "none",
                               variant_order=config["variants"])
    seen = {}
    for fig in figures:
        for line in fig.axes[0].get_lines():
            seen.setdefault(line.get_label(), set()).add(matplotlib.colors.to_hex(line.get_color()))
    assert set(seen) == set(config["variants"]) and all(len(c) == 1 for c in seen.values())
    assert len({c.pop() for c in seen.values()}) == len(seen)  # and no two variants share one


def test_network_drawing_has_a_key_for_edge_colour_and_width(monkeypatch, tmp_path):
    import matplotlib.pyplot as plt
    kept = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    net = npl.GraphNet.mlp(3, [4], 2, seed=0)
    npl.analysis.draw_graph(net, tmp_path / "net.png")
    labels = [t.get_text() for t in kept[0].axes[0].get_legend().get_texts()]
    close(kept[0])
    assert {"edge, w > 0", "edge, w < 0"} <= set(labels)
    assert sum(label.startswith("|w| = ") for label in labels) >= 2
    assert (tmp_path / "net.png").stat().st_size > 1000


def test_urn_weight_plot_has_a_colour_bar(figures, tmp_path):
    from neuroplastic.experiments.urn import save_weight_plot
    net = npl.URN(n_in=3, n_out=2, size=10, steps=2, seed=0)
    layer_of = {i: 1 for i in range(5, 10)}
    save_weight_plot(net, layer_of, tmp_path / "W.png", title="t")
    assert any(ax.get_ylabel().startswith("|w|") for ax in figures[0].axes)  # the colour bar's axis


def test_urn_table_says_in_words_how_many_seeds_are_a_pure_mlp():
    from neuroplastic.experiments.urn_report import structure_table
    structure = {"active_neurons": 40, "depth": 3, "widths": [35, 1, 8], "mlp_score": 0.9, "skip_share": 0.05,
                 "self_loop_share": 0.02, "lateral_share": 0.05}
    rows = [{"task": "shells", "variant": "urn", "seed": s,
             "metrics": {"test_accuracy": 1.0, "structure": {**structure, "is_mlp": s == 0}}} for s in (0, 1)]
    table = structure_table(rows)
    assert "pure MLP" in table.splitlines()[0] and table.splitlines()[-1].endswith("| 1 of 2 seeds |")
    assert structure_table(rows[1:]).splitlines()[-1].endswith("| no |")


def claim_rows(task="CartPole-v1", growth_hidden=256):
    def row(variant, seed, ret, params, hidden):
        return {"task": task, "variant": variant, "seed": seed,
                "metrics": {"return_mean": ret, "return_std": 10.0, "teacher_return_mean": 500.0,
                            "n_params": params, "n_hidden": hidden}}
    return [row("smgrnn", s, 500.0, 200, 40) for s in (0, 1)] + \
        [row("growth-only", s, 500.0, 900, growth_hidden) for s in (0, 1)]


def test_failed_size_claim_names_the_max_hidden_cap_when_growth_only_reached_it():
    defaults = {**dataclasses.asdict(SPMConfig()), "init_hidden": 16}
    table = smgrnn_report.acceptance(claim_rows(growth_hidden=256), {"steps": 30_000, "eval_episodes": 100},
                                     defaults)
    (line,) = [r for r in table.splitlines() if "(c) growth-only ≥ 10×" in r]
    assert "**no**" in line and "max_hidden=256" in line


def test_failed_size_claim_names_the_number_of_structural_events_when_the_budget_limits_growth():
    defaults = {**dataclasses.asdict(SPMConfig()), "init_hidden": 16}
    table = smgrnn_report.acceptance(claim_rows(growth_hidden=36), {"steps": 2_000, "eval_episodes": 5}, defaults)
    (line,) = [r for r in table.splitlines() if "(c) growth-only ≥ 10×" in r]
    assert "20 structural events" in line and "at most 36 hidden neurons" in line


def test_smgrnn_report_says_the_claims_come_from_the_paper(figures, tmp_path):
    rows = claim_rows()
    for r in rows:
        r["metrics"].update(n_edges=10, wall_s=1.0)
    config = {"variants": ["smgrnn", "growth-only"], "steps": 200, "lr": 1e-3, "batch_size": 64,
              "n_data": 500, "eval_episodes": 5}
    smgrnn_report.write_report({"rows": rows, "config": config}, tmp_path, variant_order=config["variants"],
                               net_path=lambda row: tmp_path / "none")
    text = (tmp_path / "report.md").read_text()
    assert "Jia & Zhou 2025, arXiv 2512.12713" in text and "docs/smgrnn.md" in text


def test_reports_do_not_import_their_experiment_modules(tmp_path):
    code = ("import sys, neuroplastic.experiments.smgrnn_report, neuroplastic.experiments.urn_report; "
            "mods = [m for m in ('neuroplastic.experiments.smgrnn', 'neuroplastic.experiments.urn') "
            "if m in sys.modules]; print(mods)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]"


def test_run_help_lists_the_set_options_of_that_experiment_with_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "smgrnn", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert f"tau_w = {SPMConfig().tau_w!r}" in out and "eval_episodes = " in out and "--full 100" in out
    with pytest.raises(SystemExit):
        main(["run", "urn-digits", "--help"])
    out = capsys.readouterr().out
    assert "c_local = " in out and "tau_w" not in out


def test_distill_progress_reaches_the_run_bar_as_fractions_of_the_job():
    from neuroplastic.experiments.progress import job_progress
    seen = []
    with job_progress(seen.append):
        npl.distill("CartPole-v1", None, model="mlp-16", seed=0, steps=300, n_data=200, eval_every=300,
                    eval_episodes=1, curve_episodes=1, progress=True)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


def test_a_trainers_bar_inside_a_job_draws_nothing(capsys):
    from tqdm.auto import trange

    from neuroplastic.experiments.progress import job_progress
    with job_progress(lambda f: None):
        for _ in trange(5):
            pass
    assert capsys.readouterr().err == ""


def test_hebbian_report_judges_every_task_by_its_goal_and_names_it():
    from neuroplastic.experiments import hebbian_report
    from neuroplastic.experiments.goals import goal_return

    def row(task, mean, best):
        return {"task": task, "variant": "hebbian", "metrics": {
            "return_mean": mean, "return_std": 1.0, "returns": [mean], "n_params": 5, "n_synapses": 1,
            "evaluations": 10, "history": [{"step": 1, "best": best, "mean": best, "wall_s": 1.0}]}}

    assert (goal_return("CartPole-v1"), goal_return("Acrobot-v1"), goal_return("Pendulum-v1")) == (500.0, -100.0, None)
    table = hebbian_report.results_table([row("CartPole-v1", 480.0, 480.0), row("Acrobot-v1", -90.0, -80.0),
                                          row("Pendulum-v1", -150.0, -140.0)])
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
             for line in table.splitlines()[2:]}
    # seeds solved, then the first generation a candidate got there
    assert cells["CartPole-v1"][6:8] == ["0/1", "not reached (0/1)"]  # 480 is gymnasium's 475, not the goal 500
    assert cells["Acrobot-v1"][6] == "1/1" and cells["Acrobot-v1"][7].startswith("1 ")
    assert cells["Pendulum-v1"][6:8] == ["–", "–"]


def test_a_goal_is_not_judged_on_episodes_cut_shorter_than_the_envs_own_limit():
    from neuroplastic.experiments import hebbian_report
    from neuroplastic.experiments.goals import goal_return
    # Acrobot's goal is -100: an episode cut at 100 steps scores at least -100 without reaching the line
    assert goal_return("Acrobot-v1", 100) is None
    assert goal_return("Acrobot-v1", 500) == goal_return("Acrobot-v1", 0) == -100.0
    row = {"task": "Acrobot-v1", "variant": "static", "metrics": {
        "return_mean": -100.0, "return_std": 0.0, "returns": [-100.0], "n_params": 5, "n_synapses": 1,
        "evaluations": 10, "history": [{"step": 1, "best": -100.0, "mean": -100.0, "wall_s": 1.0}]}}
    solved = [c.strip() for c in hebbian_report.results_table([row], max_steps=100).splitlines()[2].split("|")][7]
    assert solved == "–"
