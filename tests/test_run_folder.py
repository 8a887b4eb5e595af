"""A run folder (DIR) across reruns: damaged files, smaller reruns, what results.json covers."""
import json

import pytest

from neuroplastic.cli import main
from neuroplastic.core.checkpoint import load

# One small job per variant: a GraphNet variant (it saves its network) and an MLP.
TINY = ["--quick", "--no-progress", "--set", "steps=200", "--set", "eval_every=100", "--set", "n_data=500",
        "--set", "eval_episodes=2", "--set", "curve_episodes=1"]


def run(out, *extra):
    return main(["run", "smgrnn", *TINY, "--out", str(out), *extra])


def without_wall_time(rows):
    """The rows less their times, and so less the digests that cover those times."""
    return [{**{k: v for k, v in r.items() if k != "digest"},
             "metrics": {k: v for k, v in r["metrics"].items() if k != "wall_s"}} for r in rows]


def rows_of(out):
    return json.loads((out / "results.json").read_text())["rows"]


@pytest.fixture(scope="module")
def two_seed_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    assert run(out, "--seeds", "2", "--set", "variants=['static', 'mlp-16']") == 0
    return out


def copy_of(folder, tmp_path):
    import shutil
    shutil.copytree(folder, tmp_path / "copy")
    return tmp_path / "copy"


def test_a_damaged_row_is_named_in_one_line_and_its_job_runs_again(two_seed_folder, tmp_path, capsys):
    out = copy_of(two_seed_folder, tmp_path)
    before = rows_of(out)
    row = out / "rows" / "CartPole-v1__static__seed1.json"
    row.write_text(row.read_text()[:40])  # truncated
    assert run(out, "--seeds", "2", "--set", "variants=['static', 'mlp-16']") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"neuroplastic: {row} is damaged (not a row of this job); running that job again"]
    redone = json.loads(row.read_text())
    assert (redone["variant"], redone["seed"]) == ("static", 1)
    assert without_wall_time(rows_of(out)) == without_wall_time(before)  # the same numbers again


@pytest.mark.parametrize("metrics", [{}, {"best_fitness": "NaN-string"}, {"n_hidden": None},
                                     {"n_edges": -1}])
def test_a_row_whose_numbers_are_not_numbers_is_named_and_its_job_runs_again(tmp_path, capsys, metrics):
    args = ["run", "neat-xor", "--quick", "--seeds", "1", "--no-progress", "--set", "reference=false",
            "--out", str(tmp_path)]
    assert main(args) == 0
    (path,) = (tmp_path / "rows").glob("*.json")
    row = json.loads(path.read_text())
    good = row["metrics"]
    row["metrics"] = {**good, **metrics} if metrics else {}
    path.write_text(json.dumps(row))
    capsys.readouterr()
    assert main(args) == 0
    assert f"{path} is damaged" in capsys.readouterr().err
    again = rows_of(tmp_path)[0]["metrics"]  # recomputed: the same numbers (times aside)
    numbers = ("solved", "best_fitness", "generations", "evaluations", "n_hidden", "n_edges")
    assert [again[k] for k in numbers] == [good[k] for k in numbers]


def test_a_row_edited_after_its_job_wrote_it_is_named_and_its_job_runs_again(two_seed_folder, tmp_path, capsys):
    out = copy_of(two_seed_folder, tmp_path)
    before = rows_of(out)
    path = out / "rows" / "CartPole-v1__static__seed1.json"
    row = json.loads(path.read_text())
    row["metrics"]["return_mean"] += 1.0  # still a plausible number: only the digest tells
    path.write_text(json.dumps(row))
    assert run(out, "--seeds", "2", "--set", "variants=['static', 'mlp-16']") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"neuroplastic: {path} is damaged (it was changed after its job wrote it); running that job again"]
    assert without_wall_time(rows_of(out)) == without_wall_time(before)  # recomputed: the same numbers


def test_a_row_without_a_digest_from_an_earlier_version_is_still_read(two_seed_folder, tmp_path, capsys):
    from neuroplastic.experiments.runner import DIGEST_KEY
    out = copy_of(two_seed_folder, tmp_path)
    path = out / "rows" / "CartPole-v1__static__seed1.json"
    row = json.loads(path.read_text())
    del row[DIGEST_KEY]
    path.write_text(json.dumps(row))
    assert run(out, "--seeds", "2", "--set", "variants=['static', 'mlp-16']") == 0
    assert "damaged" not in capsys.readouterr().err
    assert json.loads(path.read_text()) == row  # reused, not recomputed


def test_rows_in_a_folder_with_no_saved_settings_at_all_are_not_reused(two_seed_folder, tmp_path, capsys):
    out = copy_of(two_seed_folder, tmp_path)
    (out / "config.json").unlink()
    (out / "results.json").unlink()
    path = out / "rows" / "CartPole-v1__static__seed0.json"
    old = json.loads(path.read_text())
    assert run(out, "--seeds", "1", "--set", "variants=['static']", "--set", "lr=0.003") == 0
    err = capsys.readouterr().err
    assert f"no readable settings in {out} for its 4 finished rows; running those jobs again" in err
    assert json.loads((out / "config.json").read_text())["lr"] == 0.003
    assert json.loads(path.read_text())["metrics"] != old["metrics"]  # recomputed with lr=0.003
    assert [r["seed"] for r in rows_of(out)] == [0]


def test_a_copied_row_under_another_name_is_named_and_left_out(two_seed_folder, tmp_path, capsys):
    out = copy_of(two_seed_folder, tmp_path)
    before = rows_of(out)
    copy = out / "rows" / "copy of CartPole-v1__static__seed1.json"
    copy.write_text((out / "rows" / "CartPole-v1__static__seed1.json").read_text())
    assert run(out, "--seeds", "2", "--set", "variants=['static', 'mlp-16']") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"neuroplastic: {copy} holds the row of CartPole-v1__static__seed1, not of its name; "
                   "left out of the results"]
    assert rows_of(out) == before and copy.exists()


def test_a_damaged_config_json_is_named_and_the_jobs_run_again(two_seed_folder, tmp_path, capsys):
    out = copy_of(two_seed_folder, tmp_path)
    before = rows_of(out)
    (out / "results.json").unlink()  # nothing else holds the settings
    (out / "config.json").write_text("{not json")
    assert run(out, "--seeds", "2", "--set", "variants=['static', 'mlp-16']") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "config.json is damaged" in err[0] and "running those jobs again" in err[1]
    assert json.loads((out / "config.json").read_text())["seeds"] == 2
    assert without_wall_time(rows_of(out)) == without_wall_time(before)  # recomputed: the same numbers


def test_a_damaged_saved_network_is_named_and_its_job_runs_again(two_seed_folder, tmp_path, capsys):
    out = copy_of(two_seed_folder, tmp_path)
    net = out / "nets" / "CartPole-v1__static__seed0.ckpt"
    net.write_bytes(net.read_bytes()[:-10])
    assert run(out, "--seeds", "2", "--set", "variants=['static', 'mlp-16']") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"neuroplastic: {net} is damaged; job CartPole-v1__static__seed0 runs again from its first step"]
    assert load(net)["net"].n_edges > 0


def test_a_damaged_resume_checkpoint_is_named_and_the_job_starts_from_its_first_step(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "checkpoints").mkdir(parents=True)
    ckpt = out / "checkpoints" / "CartPole-v1__mlp-16__seed0.ckpt"
    ckpt.write_bytes(b"NPLCKPT garbage")
    assert run(out, "--set", "variants=['mlp-16']") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"neuroplastic: {ckpt} is damaged; job CartPole-v1__mlp-16__seed0 runs again from its first step"]
    assert len(rows_of(out)) == 1


def test_a_smaller_rerun_keeps_every_finished_row_in_results_and_report(two_seed_folder, tmp_path, capsys):
    out = copy_of(two_seed_folder, tmp_path)
    before = rows_of(out)
    assert run(out, "--seeds", "1", "--set", "variants=['static']") == 0
    err = capsys.readouterr().err.strip()
    assert "also cover 3 finished row(s)" in err and "seeds 1" in err and "variants mlp-16" in err
    results = json.loads((out / "results.json").read_text())
    assert results["rows"] == before
    assert results["config"]["seeds"] == 2 and results["config"]["variants"] == ["static", "mlp-16"]
    report = (out / "report.md").read_text()
    assert "Seeds: 2 (0-1)" in report and "| CartPole-v1 | mlp-16 | 2 |" in report


def test_an_edited_neat_ini_file_is_a_changed_setting_and_its_rows_are_not_reused(tmp_path, capsys):
    from neuroplastic.experiments.neat import CONFIGS
    ini = tmp_path / "mine.ini"
    ini.write_text((CONFIGS / "xor.ini").read_text())
    args = ["run", "neat-xor", "--quick", "--no-progress", "--set", "reference=false", "--set", "generations=2",
            "--set", f"config={ini}", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    ini.write_text(ini.read_text().replace("compatibility_threshold = 3.0", "compatibility_threshold = 2.0"))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "(the contents of the config file (sha256 " in err and len(err.splitlines()) == 1
    before, after = err.split("(sha256 ")[1].split(")")[0].split(" -> ")
    assert len(before) == len(after) == 12 and before != after


def test_a_damaged_config_json_is_not_said_to_be_rewritten_when_the_rerun_is_refused(two_seed_folder, tmp_path,
                                                                                     capsys):
    out = copy_of(two_seed_folder, tmp_path)
    (out / "config.json").write_text("")  # results.json still holds the settings
    assert run(out, "--seeds", "2", "--set", "variants=['static', 'mlp-16']", "--set", "steps=300") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "computed with other settings (steps: 200 -> 300)" in err[0]
    assert (out / "config.json").read_text() == ""  # left as it was, as said


def test_a_second_run_into_a_folder_being_written_is_refused_and_changes_nothing(two_seed_folder, tmp_path,
                                                                                  capsys):
    from neuroplastic.experiments.runner import folder_lock
    out = copy_of(two_seed_folder, tmp_path)
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    with folder_lock(out):  # as the run writing it holds it
        assert run(out, "--seeds", "2", "--set", "variants=['static', 'mlp-16']") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another neuroplastic run is writing there" in err[0]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"} == files
    assert run(out, "--seeds", "2", "--set", "variants=['static', 'mlp-16']") == 0  # released: it runs


@pytest.fixture
def interrupted_hebbian(tmp_path, monkeypatch):
    """A hebbian --quick folder whose only job was interrupted after evolving: it holds the
    job's resume checkpoint (DIR/partial) and no row."""
    from neuroplastic.evolve.controllers import StaticControllers

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "heb"
    args = ["run", "hebbian", "--quick", "--no-progress", "--set", "variants=static", "--out", str(out)]
    with monkeypatch.context() as m:
        m.setattr(StaticControllers, "evaluate", interrupt)
        assert main(args) == 130
    assert len(list((out / "partial").glob("*.ckpt"))) == 1 and not list((out / "rows").glob("*.json"))
    return out, args


def test_a_damaged_hebbian_resume_checkpoint_is_named_and_its_job_starts_again(interrupted_hebbian, capsys):
    out, args = interrupted_hebbian
    (partial,) = (out / "partial").glob("*.ckpt")
    partial.write_bytes(partial.read_bytes()[:200])
    capsys.readouterr()
    assert main(args) == 0
    assert "cannot be resumed" in capsys.readouterr().err
    assert len(list((out / "rows").glob("*.json"))) == 1 and not partial.exists()


def test_a_rerun_with_other_settings_is_refused_while_a_job_is_unfinished(interrupted_hebbian, capsys):
    out, args = interrupted_hebbian
    saved = (out / "config.json").read_text()
    capsys.readouterr()
    assert main(args + ["--set", "popsize=6"]) == 2
    err = capsys.readouterr().err
    assert "unfinished jobs computed with other settings (popsize: 8 -> 6)" in err and len(err.splitlines()) == 1
    assert (out / "config.json").read_text() == saved  # the refused settings are not written


def test_an_out_folder_that_cannot_hold_a_run_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "rows").write_text("a file where the rows folder goes")
    args = ["run", "neat-xor", "--quick", "--no-progress", "--set", "reference=false", "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "is a file, not the folder of finished rows" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("block", ["nets", "report.md"])
def test_a_file_or_folder_in_the_way_of_a_runs_output_is_one_line_naming_it_and_exit_2(tmp_path, capsys, block):
    # a file where the runner makes a folder (nets), and a folder where it writes a file (report.md)
    (tmp_path / block).write_text("in the way") if block == "nets" else (tmp_path / block).mkdir()
    args = ["run", "neat-xor", "--quick", "--no-progress", "--set", "reference=false", "--set", "seeds=1",
            "--set", "generations=2", "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"cannot write {str(tmp_path / block)!r}" in err and "report needs" not in err
    assert len(err.splitlines()) == 1


def test_a_row_that_lacks_what_the_report_reads_is_one_line_and_exit_2(tmp_path, capsys):
    args = ["run", "neat-xor", "--quick", "--no-progress", "--set", "reference=false", "--out", str(tmp_path)]
    assert main(args) == 0
    (tmp_path / "rows" / "xor__neuroplastic__seed1.json").write_text(
        json.dumps({"task": "xor", "variant": "neuroplastic", "seed": 1, "metrics": {"note": "no numbers"}}))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "lack what the neat-xor report needs" in err and len(err.splitlines()) == 1


def test_report_names_a_damaged_network_file_and_writes_the_report_without_its_drawing(tmp_path, capsys):
    args = ["run", "neat-xor", "--quick", "--no-progress", "--set", "reference=false", "--out", str(tmp_path)]
    assert main(args) == 0
    for net in (tmp_path / "nets").glob("*.ckpt"):
        net.write_bytes(net.read_bytes()[:100])
    (tmp_path / "report.md").unlink()
    capsys.readouterr()
    assert main(["report", str(tmp_path)]) == 0
    assert "its drawing is left out of the report" in capsys.readouterr().err
    assert "![network]" not in (tmp_path / "report.md").read_text()


def test_a_static_self_editing_job_waits_for_its_twins_row_and_nothing_else():
    from neuroplastic.experiments import get_experiment
    from neuroplastic.experiments.runner import waits_for
    experiment = get_experiment("self-editing")
    config = experiment.config(True, False, {"seeds": 2, "variants": ["static", "self-editing", "neat"]})
    jobs = experiment.jobs(config)
    waits = waits_for(experiment, jobs)
    twin = "CartPole-v1__self-editing__seed{}"
    assert waits == {twin.format(0): [], "CartPole-v1__static__seed0": [twin.format(0)], "CartPole-v1__neat__seed0": [],
                     twin.format(1): [], "CartPole-v1__static__seed1": [twin.format(1)], "CartPole-v1__neat__seed1": []}
    names = [f"{j['task']}__{j['variant']}__seed{j['seed']}" for j in jobs]
    assert all(names.index(before) < names.index(job) for job, after in waits.items() for before in after)
    # without its twin among the jobs (variants=static) a static job waits for nothing
    alone = experiment.jobs(experiment.config(True, False, {"variants": ["static"]}))
    assert waits_for(experiment, alone) == {"CartPole-v1__static__seed0": []}


def test_self_editing_on_ray_gives_the_numbers_of_an_in_process_run(tmp_path):
    pytest.importorskip("ray")
    sets = ["--set", "variants=['self-editing', 'static']"]
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(["run", "self-editing", "--quick", "--no-progress", "--out", str(local), *sets]) == 0
    assert main(["run", "self-editing", "--quick", "--no-progress", "--out", str(remote), "--workers", "2", *sets]) == 0

    def numbers(path):  # everything but times
        return [(r["variant"], r["metrics"]["returns"], r["metrics"]["n_hidden"], r["metrics"]["n_params"],
                 [(h["best"], h["mean"], h["sigma"]) for h in r["metrics"]["history"]]) for r in rows_of(path)]

    assert numbers(local) == numbers(remote)


def test_a_folder_holding_another_experiments_run_is_refused_by_that_experiments_name(tmp_path, capsys):
    (tmp_path / "rows").mkdir()
    (tmp_path / "results.json").write_text(json.dumps({"experiment": "hebbian", "config": {"sigma": 0.5}, "rows": []}))
    args = ["run", "neat-xor", "--quick", "--no-progress", "--set", "reference=false", "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--out {str(tmp_path)!r} holds a hebbian run, not neat-xor" in err and len(err.splitlines()) == 1


def test_a_seed_whose_species_all_stagnate_is_named_in_one_line_and_the_other_rows_are_kept(tmp_path, capsys):
    from neuroplastic.experiments.neat import CONFIGS
    ini = tmp_path / "stagnates.ini"  # with no species elitism, seed 5 loses every species in generation 4
    ini.write_text((CONFIGS / "xor.ini").read_text().replace("max_stagnation       = 20", "max_stagnation = 2")
                   .replace("species_elitism      = 2", "species_elitism = 0"))
    assert "max_stagnation = 2" in ini.read_text() and "species_elitism = 0" in ini.read_text()
    out = tmp_path / "out"
    args = ["run", "neat-xor", "--quick", "--no-progress", "--set", "reference=false", "--set", "seeds=6",
            "--set", "generations=5", "--set", f"config={ini}", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "job xor__neuroplastic__seed5: every species stagnated in generation 4" in err
    assert len(err.splitlines()) == 1 and len(list((out / "rows").glob("*.json"))) == 5


@pytest.mark.parametrize("where", ["rows/xor__neuroplastic__seed0.json", "nets/xor__neuroplastic__seed0.ckpt"])
def test_a_folder_where_a_jobs_file_goes_is_one_line_naming_it_and_exit_2(tmp_path, capsys, where):
    # no config.json: the unreadable-settings path, which removes stale rows and checkpoints
    (tmp_path / where).mkdir(parents=True)
    args = ["run", "neat-xor", "--quick", "--no-progress", "--set", "reference=false", "--set", "seeds=1",
            "--set", "generations=2", "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{str(tmp_path / where)!r} is a folder where job xor__neuroplastic__seed0 keeps" in err
    assert "damaged" not in err and len(err.splitlines()) == 1


def test_a_folder_among_the_resume_checkpoints_is_not_taken_for_one(tmp_path, capsys):
    # neat-xor never checkpoints: the folder is left alone and the run goes on
    (tmp_path / "partial" / "xor__neuroplastic__seed0.ckpt").mkdir(parents=True)
    args = ["run", "neat-xor", "--quick", "--no-progress", "--set", "reference=false", "--set", "seeds=1",
            "--set", "generations=2", "--out", str(tmp_path)]
    assert main(args) == 0
    assert "unfinished jobs" not in capsys.readouterr().err
    assert (tmp_path / "partial" / "xor__neuroplastic__seed0.ckpt").is_dir()


def test_an_interrupted_run_of_another_experiment_is_refused_by_its_name(tmp_path, capsys):
    args = ["run", "neat-xor", "--quick", "--no-progress", "--set", "reference=false", "--set", "seeds=1",
            "--set", "generations=2", "--out", str(tmp_path)]
    assert main(args) == 0
    (tmp_path / "results.json").unlink()  # as a run stopped before its first results.json leaves it
    capsys.readouterr()
    assert main(["run", "hebbian", "--quick", "--no-progress", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"--out {str(tmp_path)!r} holds a neat-xor run, not hebbian" in err and len(err.splitlines()) == 1
