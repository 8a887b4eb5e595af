"""DEN: expansion exactly when the loss condition holds, group-lasso removal, split with the old
weights restored, timestamped inference; the den experiment and its bad input."""
import numpy as np
import pytest
import torch

from neuroplastic.errors import ConfigError
from neuroplastic.lifelong import DEN, EWC, FineTune, NetPerTask

FAST = {"epochs": 2, "head_epochs": 1, "batch_size": 32}


def _tasks(n_tasks=2, n=120, n_in=8, seed=0):
    """Separable toy tasks: 3 classes by the sign pattern of two task-specific input features."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n_tasks):
        x = rng.normal(size=(n, n_in)).astype(np.float32)
        a, b = x[:, t % n_in], x[:, (t + 1) % n_in]
        y = np.where(a > 0, 0, np.where(b > 0, 1, 2))
        out.append((x, y))
    return out


def _den(**kw):
    return DEN(8, [12, 6], 3, 2, seed=0, **{**FAST, **kw})


def _run(den, tasks):
    for t, (x, y) in enumerate(tasks):
        den.learn(t, x, y)
    return den.history


def test_den_expands_when_and_only_when_the_loss_after_selective_retraining_exceeds_tau():
    tasks = _tasks()
    probe = _run(_den(loss_threshold=1e9, split=False), tasks)[1]
    loss = probe["expansion_loss"]
    assert not probe["expanded"] and probe["added"] == [0, 0]
    above = _run(_den(loss_threshold=loss * 0.99, split=False), tasks)[1]   # the same run up to the test
    assert above["expansion_loss"] == pytest.approx(loss)
    assert above["expanded"] and above["units"] == [12 + above["added"][0], 6 + above["added"][1]]
    below = _run(_den(loss_threshold=loss * 1.01, split=False), tasks)[1]
    assert not below["expanded"] and below["units"] == [12, 6]
    assert not _run(_den(loss_threshold=0.0, expand=False, split=False), tasks)[1]["expanded"]


def test_new_units_the_group_lasso_switches_off_are_removed():
    den = _den(loss_threshold=0.0, split=False, group_lasso=10.0, l1=0.0)
    log = _run(den, _tasks())[1]
    assert log["expanded"] and log["removed_new"] == 2 * den.config.k and log["added"] == [0, 0]
    assert den.units_per_layer() == [12, 6]


def test_kept_new_units_are_wired_from_the_layer_below_and_into_the_new_head_only():
    den = _den(loss_threshold=0.0, split=False, group_lasso=0.0, l1=0.0)
    _run(den, _tasks())
    new = den.hidden_ids()[den.birth[den.hidden_ids()] == 1]
    assert len(new) == 2 * den.config.k
    src, dst, _ = den.net.edges()
    src, dst = src.long(), dst.long()
    from_new = torch.isin(src, new)
    heads = dst < den.n_in + den.net.n_out
    assert not bool(torch.isin(dst[from_new & heads], den.head(0)).any())   # task 0's head never sees them
    assert bool(torch.isin(dst[from_new & heads], den.head(1)).all())


def test_timestamped_inference_excludes_units_born_later():
    den = _den(loss_threshold=0.0, split=False, group_lasso=0.0)
    tasks = _tasks()
    _run(den, tasks)
    assert den.view(0).n_hidden == 18 and den.net.n_hidden == 18 + 2 * den.config.k
    x = tasks[0][0]
    before = [den.predict(x, 0), den.predict(x, 1)]
    new = den.hidden_ids()[den.birth[den.hidden_ids()] == 1]
    with torch.no_grad():   # scramble everything the units born at task 1 send and receive
        touched = torch.isin(den.net.edge_src.long(), new) | torch.isin(den.net.edge_dst.long(), new)
        den.net.weight[touched] = torch.randn(int(touched.sum())) * 5
        den.net.bias[new] = 3.0
    assert torch.equal(den.predict(x, 0), before[0])        # task 0 never sees them
    assert not torch.allclose(den.predict(x, 1), before[1])  # task 1 does


def test_split_copies_drifted_units_and_gives_the_originals_their_old_weights():
    den = _den(loss_threshold=1e9, drift_threshold=1e-6, k=3)
    tasks = _tasks()
    den.learn(0, *tasks[0])
    src, dst, w = den.net.edges()
    old = {(int(s), int(d)): float(v) for s, d, v in zip(src, dst, w)}
    log = den.learn(1, *tasks[1])
    assert log["split"] == 3 and sum(den.units_per_layer()) == 18 + 3
    src, dst, w = den.net.edges()
    for unit in log["split_units"]:
        into = dst.long() == unit
        for s, v in zip(src[into].tolist(), w[into].tolist()):
            assert (s, unit) in old and v == pytest.approx(old[(s, unit)], abs=1e-6)
    copies = den.hidden_ids()[den.birth[den.hidden_ids()] == 1]
    assert len(copies) == 3


def test_bad_den_options_are_one_config_error():
    with pytest.raises(ConfigError, match="n_tasks"):
        DEN(8, [4], 3, 1)
    for bad in ({"loss_threshold": -0.1}, {"drift_threshold": 0}, {"k": 0}, {"l1": float("nan")}, {"nosuch": 1}):
        with pytest.raises(ConfigError):
            _den(**bad)
    den = _den()
    with pytest.raises(ConfigError, match="out of order"):
        den.learn(1, *_tasks()[1])


def test_baselines_learn_in_order_and_a_net_per_task_does_not_forget():
    tasks = _tasks()
    for cls in (FineTune, EWC, NetPerTask):
        learner = cls(8, [12, 6], 3, 2, epochs=3)
        learner.learn(0, *tasks[0])
        first = learner.accuracy(*tasks[0], 0)
        learner.learn(1, *tasks[1])
        if cls is NetPerTask:
            assert learner.accuracy(*tasks[0], 0) == first
            assert learner.n_params == 2 * ((8 * 12 + 12) + (12 * 6 + 6) + (6 * 3 + 3))
    ewc = EWC(8, [12, 6], 3, 2, epochs=1, lam=1.0)
    ewc.learn(0, *tasks[0])
    assert len(ewc.anchors) == 1 and float(ewc.penalty(ewc.model).detach()) == pytest.approx(0.0)


def test_den_experiment_tiny_run_and_report(tmp_path):
    from neuroplastic.experiments import get_experiment
    exp = get_experiment("den")
    config = exp.config(True, False, {"hidden": [16, 8], "epochs": 1, "permuted_tasks": 2})
    rows = []
    for job in exp.jobs(config):
        rows.append({"task": job["task"], "variant": job["variant"], "seed": job["seed"],
                     "metrics": exp.run_job(job, config, tmp_path)})
    assert {r["variant"] for r in rows} == {"den", "finetune", "ewc", "per-task"}
    for r in rows:
        m = r["metrics"]
        assert len(m["acc_matrix"]) == (2 if r["task"] == "permuted" else 5) and 0 <= m["test_accuracy"] <= 1
    exp.report({"experiment": "den", "config": config, "rows": rows}, tmp_path)
    assert (tmp_path / "split.png").stat().st_size > 1000
    assert "## permuted (2 tasks)" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("setting, fragment", [
    ("permuted_tasks=1", "at least 2 tasks"),
    ("loss_threshold=-1", "loss_threshold"),
    ("drift_threshold=0", "drift_threshold"),
    ("sequences=rotated", "sequence"),
])
def test_bad_den_input_is_one_line_and_exit_2(tmp_path, capsys, setting, fragment):
    from neuroplastic.cli import main
    assert main(["run", "den", "--quick", "--set", setting, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


def _write_idx(path, array):
    import struct
    path.write_bytes(bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


def test_den_experiment_reads_an_mnist_idx_directory_and_refuses_a_damaged_one(tmp_path, capsys):
    from neuroplastic.cli import main
    from neuroplastic.experiments import get_experiment
    rng = np.random.default_rng(0)
    for stem, n in (("train", 200), ("t10k", 60)):
        y = (np.arange(n) % 10).astype(np.uint8)
        x = (rng.random((n, 5, 5)) * 50).astype(np.uint8)
        x.reshape(n, -1)[np.arange(n), y] = 255      # one bright pixel per class
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte", x)
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte", y)
    exp = get_experiment("den")
    config = exp.config(True, False, {"data": str(tmp_path), "hidden": [8], "epochs": 1, "permuted_tasks": 2,
                                      "variants": "den"})
    metrics = exp.run_job({"task": "split", "variant": "den", "seed": 0}, config, tmp_path)
    assert metrics["n_tasks"] == 5 and 0 <= metrics["test_accuracy"] <= 1
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 60]) + bytes(10))
    assert main(["run", "den", "--quick", "--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "truncated" in err and len(err.splitlines()) == 1


def test_learners_refuse_nan_inputs_and_labels_that_are_not_class_ids_with_one_config_error():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    bad = [((np.where(x > 1, np.nan, x), y), "NaN or infinite"), ((x, y[:, None]), "one integer per row"),
           ((x, np.eye(2)[y]), "not one-hot"), ((x, y.astype(str)), "class ids"), ((x, y + 0.5), "class ids"),
           ((x, y * 5), "must lie in 0..1"), ((x.astype(str), y), "x must be numbers")]
    for make in (lambda: DEN(6, [5], 2, 3, epochs=1), lambda: FineTune(6, [5], 2, 3, epochs=1),
                 lambda: EWC(6, [5], 2, 3, epochs=1), lambda: NetPerTask(6, [5], 2, 3, epochs=1)):
        learner = make()
        for (xs, ys), message in bad:
            with pytest.raises(ConfigError, match=message):
                learner.learn(0, xs, ys)
        with pytest.raises(ConfigError, match="task=0.0 must be an integer"):
            learner.learn(0.0, x, y)
        learner.learn(0, x, y)
        with pytest.raises(ConfigError, match=r"x must be \(n, 6\)"):
            learner.predict(np.zeros(6), 0)
        with pytest.raises(ConfigError, match="60 class ids"):
            learner.accuracy(x, y[:5], 0)
    with pytest.raises(ConfigError, match="split='no' must be true or false"):
        DEN(6, [5], 2, 3, split="no")
    with pytest.raises(ConfigError, match="seed="):
        DEN(6, [5], 2, 3, seed=1.5)


def test_den_runs_a_users_npz_with_split_pairs_of_its_own_classes_and_refuses_an_odd_count(tmp_path, capsys):
    from neuroplastic.cli import main
    from neuroplastic.experiments import get_experiment
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 8)).astype(np.float32)
    y = np.arange(240) % 6
    x[np.arange(240), y] += 3.0
    np.savez(tmp_path / "six.npz", X=x, y=y)
    exp = get_experiment("den")
    config = exp.config(True, False, {"data": str(tmp_path / "six.npz"), "hidden": [8], "epochs": 1,
                                      "variants": "den"})
    metrics = exp.run_job({"task": "split", "variant": "den", "seed": 0}, config, tmp_path)
    assert metrics["n_tasks"] == 3 and 0 <= metrics["test_accuracy"] <= 1   # pairs 0/1, 2/3, 4/5
    np.savez(tmp_path / "three.npz", X=x, y=y % 3)
    assert main(["run", "den", "--quick", "--data", str(tmp_path / "three.npz"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs an even number of classes, at least 4" in err[0]
