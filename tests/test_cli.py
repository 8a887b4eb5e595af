import json
import subprocess
import sys

import pytest

from neuroplastic.cli import main


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    assert main(["run", "smgrnn", "--quick", "--out", str(out), "--no-progress"]) == 0
    return out


def test_quick_run_writes_results_report_and_plots(quick_run):
    results = json.loads((quick_run / "results.json").read_text())
    assert set(results) >= {"experiment", "config", "environment", "rows"}
    assert results["experiment"] == "smgrnn"
    variants = {r["variant"] for r in results["rows"]}
    assert variants == {"smgrnn", "static", "mlp-16"}
    for row in results["rows"]:
        assert {"task", "variant", "seed", "metrics"} <= set(row)
        m = row["metrics"]
        assert {"return_mean", "return_std", "n_params", "n_hidden", "n_edges", "wall_s"} <= set(m)
    report = (quick_run / "report.md").read_text()
    assert "| CartPole-v1 | smgrnn |" in report and "(a) SMGrNN return" in report
    for png in ("return_vs_step.png", "params_vs_step.png", "network_CartPole-v1.png"):
        assert (quick_run / png).stat().st_size > 1000
    assert not list((quick_run / "checkpoints").iterdir())  # finished runs leave no checkpoint


def test_rerun_resumes_instead_of_recomputing(quick_run, capsys):
    before = (quick_run / "results.json").read_text()
    assert main(["run", "smgrnn", "--quick", "--out", str(quick_run), "--no-progress"]) == 0
    assert json.loads((quick_run / "results.json").read_text())["rows"] == json.loads(before)["rows"]


def test_report_on_a_results_file_that_is_not_ours_is_one_line(quick_run, tmp_path, capsys):
    results = json.loads((quick_run / "results.json").read_text())
    for broken in ({**results, "rows": [{"task": "t", "variant": "v", "seed": 0}]},
                   {**results, "config": {}}):
        (tmp_path / "results.json").write_text(json.dumps(broken))
        assert main(["report", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("metrics dict" in err or "lack what" in err)


def test_report_command_rewrites_report(quick_run):
    (quick_run / "report.md").unlink()
    assert main(["report", str(quick_run)]) == 0
    assert (quick_run / "report.md").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["run", "nosuch"], "unknown experiment 'nosuch'"),
    (["run", "smgrnn", "--envs", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["run", "smgrnn", "--set", "window=-1"], "window=-1"),
    (["run", "smgrnn", "--set", "tau_w=-0.5"], "tau_w=-0.5"),
    (["run", "smgrnn", "--set", "steps"], "key=value"),
    (["run", "smgrnn", "--set", "colour=blue"], "unknown smgrnn option 'colour'"),
    (["run", "smgrnn", "--set", "variants=['mlp-big']"], "unknown variant 'mlp-big'"),
    (["run", "smgrnn", "--seeds", "0"], "seeds=0"),
    (["run", "smgrnn", "--config", "missing.toml"], "missing.toml"),
    (["run", "smgrnn", "--workers", "0"], "workers=0"),
    (["report", "/nonexistent/dir"], "no results"),
    (["bench", "nosuch"], "unknown benchmark 'nosuch'"),
    (["frobnicate"], "invalid choice"),
    (["run", "smgrnn", "--envs", "Acrobot-v1"], "no built-in teacher for env 'Acrobot-v1'"),
    (["run", "urn-shells", "--quick", "--set", "variants=['c_weight=abc']"], "c_weight='abc' must be a number"),
    (["run", "urn-shells", "--quick", "--set", "device='tpu'"], "device='tpu'"),
    (["run", "smgrnn", "--config", "."], "cannot be read"),
    (["run", "smgrnn", "--set", "variants=[1, 2]"], "variants=[1, 2] must be a comma-separated string"),
    (["run", "urn-shells", "--quick", "--set", "variants=[1, 2]"], "variants=[1, 2] must be a list of strings"),
    (["run", "urn-shells", "--quick", "--set", "variants=['steps=0']"], "variant 'steps=0': steps=0 must be"),
    (["run", "urn-shells", "--quick", "--set", "variants=['c_weight=-1']"], "c_weight=-1.0 must be a finite"),
    (["run", "urn-shells", "--quick", "--set", "lr=inf"], "lr=inf must be a finite number > 0"),
    (["run", "urn-shells", "--quick", "--set", "threshold=nan"], "threshold=nan must be a finite"),
    (["run", "smgrnn", "--quick", "--data", "x.npz"], "--data is for dataset experiments ("),
    (["run", "urn-shells", "--quick", "--envs", "CartPole-v1"], "--envs is for control-task experiments ("),
    (["run", "gng", "--quick", "--seeds", "99999999999"], "seeds=99999999999 is more than 10,000 seeds"),
    (["run", "nosuch", "--help"], "unknown experiment 'nosuch'"),
])
def test_bad_input_is_one_line_and_exit_2(argv, fragment, capsys, tmp_path):
    out = tmp_path / "out"
    if argv[0] == "run":
        argv = argv + ["--out", str(out)]
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("[enforce fail at alloc_cpu.cpp:117] "
                                                     "DefaultCPUAllocator: can't allocate memory: you tried to "
                                                     "allocate 2400000000000 bytes.")])
def test_a_run_that_runs_out_of_memory_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, error):
    from neuroplastic.experiments import get_experiment
    experiment = type(get_experiment("gng"))

    def run_job(self, *args, **kwargs):
        raise error
    monkeypatch.setattr(experiment, "run_job", run_job)
    assert main(["run", "gng", "--quick", "--no-progress", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not enough memory for these settings" in err and len(err.splitlines()) == 1


def test_a_runtime_error_that_is_not_about_memory_is_not_called_one(tmp_path, monkeypatch):
    from neuroplastic.experiments import get_experiment

    def run_job(self, *args, **kwargs):
        raise RuntimeError("a bug")
    monkeypatch.setattr(type(get_experiment("gng")), "run_job", run_job)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["run", "gng", "--quick", "--no-progress", "--out", str(tmp_path / "out")])


def test_address_where_no_cluster_answers_is_one_line_and_exit_2(tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    assert main(["run", "urn-shells", "--quick", "--address", "127.0.0.1:1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no Ray cluster answers there" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_checkpoint_every_can_be_set_and_quick_bench_keeps_the_full_file(tmp_path):
    argv = ["run", "smgrnn", "--quick", "--no-progress", "--out", str(tmp_path / "o"), "--set", "steps=200",
            "--set", "variants=['smgrnn']", "--set", "checkpoint_every=50"]
    assert main(argv) == 0
    assert main(["bench", "graphnet", "--quick", "--out", str(tmp_path / "b")]) == 0
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["graphnet-quick.json"]


def test_spm_options_reach_the_spm_variants_and_static_ignores_them(tmp_path, monkeypatch):
    import neuroplastic.experiments.smgrnn as experiment
    seen = {}
    distill = experiment.distill

    def recording_distill(env_id, teacher, model, seed, **options):
        result = distill(env_id, teacher, model=model, seed=seed, **options)
        seen[model] = result["spm"]  # the SPM configuration the student actually ran with
        return result

    monkeypatch.setattr(experiment, "distill", recording_distill)
    out = tmp_path / "o"
    argv = ["run", "smgrnn", "--quick", "--no-progress", "--out", str(out), "--set", "steps=300",
            "--set", "window=50", "--set", "variants=['growth-only', 'static']"]
    assert main(argv) == 0
    rows = {r["variant"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert set(rows) == {"growth-only", "static"}
    assert seen["growth-only"]["window"] == 50 and seen["growth-only"]["prune"] is False
    assert seen["static"] is None


def test_rerun_with_other_settings_is_refused_not_mixed(quick_run, capsys):
    code = main(["run", "smgrnn", "--quick", "--out", str(quick_run), "--no-progress", "--set", "lr=0.01"])
    err = capsys.readouterr().err
    assert code == 2 and "lr: 0.001 -> 0.01" in err and len(err.strip().splitlines()) == 1


def test_out_that_is_a_file_and_config_that_is_not_text(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["run", "smgrnn", "--quick", "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    for argv in (["run", "smgrnn", "--quick", "--out", str(tmp_path / "file" / "sub")],
                 ["bench", "graphnet", "--quick", "--out", str(tmp_path / "file" / "sub")]):
        assert main(argv) == 2  # (the benchmark refuses before it runs)
        assert "'" + str(tmp_path / "file") + "' is a file, not a directory" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe lr = 1")
    assert main(["run", "smgrnn", "--quick", "--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "not UTF-8" in err[0] and not (tmp_path / "o").exists()


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "neuroplastic", "list"], capture_output=True, text=True)
    assert done.returncode == 0 and "smgrnn" in done.stdout


def test_console_script_exit_status():
    done = subprocess.run([sys.executable, "-m", "neuroplastic.cli", "run", "nosuch"], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_list_names_experiments_and_benchmarks(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "smgrnn" in out and "graphnet" in out


def test_ray_workers_give_the_same_numbers_and_leave_stderr_empty(tmp_path, capfd):
    pytest.importorskip("ray")
    sets = ["--set", "variants=['smgrnn']", "--set", "steps=300", "--seeds", "2"]
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(["run", "smgrnn", "--quick", "--no-progress", "--out", str(local), *sets]) == 0
    capfd.readouterr()
    assert main(["run", "smgrnn", "--quick", "--no-progress", "--out", str(remote), "--workers", "2", *sets]) == 0
    assert capfd.readouterr().err == ""  # no Ray start-up, token or worker messages

    def numbers(path):
        rows = json.loads((path / "results.json").read_text())["rows"]
        return [(r["seed"], r["metrics"]["return_mean"], r["metrics"]["n_params"], r["metrics"]["final_loss"])
                for r in rows]

    assert numbers(local) == numbers(remote)


def test_a_run_that_fails_before_any_job_finishes_leaves_no_files(tmp_path, monkeypatch, capsys):
    from neuroplastic.errors import ConfigError
    from neuroplastic.experiments import get_experiment

    def failing_job(*args, **kwargs):
        raise ConfigError("this job cannot run")

    monkeypatch.setattr(get_experiment("urn-shells"), "run_job", failing_job)
    assert main(["run", "urn-shells", "--quick", "--no-progress", "--out", str(tmp_path / "o")]) == 2
    assert "this job cannot run" in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("kind", ["text", "object-array", "npy"])
def test_data_that_is_not_an_npz_of_arrays_says_what_it_should_be_and_never_pickle(kind, tmp_path, capsys):
    import numpy as np
    path = tmp_path / {"text": "notes.txt", "object-array": "objects.npz", "npy": "array.npy"}[kind]
    if kind == "text":
        path.write_text("not data\n")
    elif kind == "object-array":
        np.savez(path, X=np.array([{"a": 1}] * 8, dtype=object), y=np.arange(8) % 2)
    else:
        np.save(path, np.zeros((8, 2)))
    assert main(["run", "urn-shells", "--quick", "--data", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "np.savez(FILE, X=X, y=y)" in err and "pickle" not in err


@pytest.mark.parametrize("flag", ["--envs", "--out"])
def test_an_empty_envs_or_out_is_one_line_not_the_default(flag, capsys):
    assert main(["run", "hebbian", "--quick", flag, ""]) == 2
    err = capsys.readouterr().err
    assert f"{flag} is empty" in err and len(err.splitlines()) == 1


def test_list_gives_each_benchmarks_whole_first_paragraph(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "each at pop 150 / 1,000 / 10,000) vs neat-python 2.0 on the same config and task." in out


def test_report_on_a_binary_results_file_or_on_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "results.json").write_bytes(bytes(range(256)))
    assert main(["report", str(tmp_path)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "results.json")]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_gng_on_identical_points_reports_a_zero_quantisation_error_instead_of_dividing_by_it(tmp_path):
    import numpy as np
    np.savez(tmp_path / "same.npz", X=np.ones((300, 2)))
    out = tmp_path / "run"
    args = ["run", "gng", "--quick", "--no-progress", "--data", str(tmp_path / "same.npz"), "--out", str(out)]
    assert main(args) == 0
    assert "n/a (QE 0)" in (out / "report.md").read_text()


@pytest.mark.parametrize("flag, value, key", [("--envs", "CartPole-v1", "envs"), ("--seeds", "2", "seeds")])
def test_a_flag_and_set_of_the_same_key_are_refused_not_one_silently_dropped(tmp_path, capsys, flag, value, key):
    assert main(["run", "hebbian", "--quick", flag, value, "--set", f"{key}=3", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{flag} and {key}=" in err[0] and "give one" in err[0]
    assert not (tmp_path / "o").exists()


def test_report_on_a_results_json_whose_experiment_is_no_name_is_one_line(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps({"experiment": ["neat-xor"], "config": {}, "rows": []}))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown experiment ['neat-xor']" in err[0]
