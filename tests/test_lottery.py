"""Lottery tickets: pruning removes edges and keeps the masked dense function; rates; rewinding."""
import numpy as np
import pytest
import torch

from neuroplastic.core.graph import GraphNet
from neuroplastic.errors import ConfigError
from neuroplastic.prune import check_options, find_tickets, prune, reinit, rewind, snapshot


def _mlp(seed=0):
    return GraphNet.mlp(12, [20, 10], 4, activation="relu", seed=seed)


def _dense_weights(net):
    """The weight matrices W[dst, src] of the dense net as a dict of (src, dst) -> weight."""
    src, dst, w = net.edges()
    return dict(zip(zip(src.tolist(), dst.tolist()), w.tolist()))


def _masked_forward(dense, kept, x):
    """The dense net with every weight not in `kept` set to zero (a mask)."""
    masked = GraphNet.mlp(12, [20, 10], 4, activation="relu", seed=0)
    masked.load_state_dict(dense.state_dict())
    src, dst, w = masked.edges()
    keep = torch.tensor([(s, d) in kept for s, d in zip(src.tolist(), dst.tolist())])
    from neuroplastic.core.edits import Edits
    masked.apply_edits(Edits().set_weights(src, dst, torch.where(keep, w, torch.zeros_like(w))))
    return masked(x)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_pruned_net_equals_masked_dense_net(scope):
    torch.manual_seed(0)
    net = _mlp()
    with torch.no_grad():  # trained-looking weights with varied magnitudes, biases too
        net.weight.mul_(torch.rand_like(net.weight) * 3)
        net.bias.add_(torch.randn_like(net.bias) * 0.3)
    dense = _mlp()
    dense.load_state_dict(net.state_dict())
    x = torch.randn(32, 12)
    src, dst, _ = dense.edges()
    kept = set(zip(src.tolist(), dst.tolist()))
    dead = 0
    for _ in range(5):  # deep enough that neurons die and are removed (their constants folded)
        counts = prune(net, 0.35, scope=scope)
        kept -= set(zip(*(t.tolist() for t in counts["removed"])))
        dead += counts["dead_neurons"]
    assert dead > 0 and 0 < net.n_edges < len(kept)
    assert torch.allclose(net(x), _masked_forward(dense, kept, x), atol=1e-5)


def test_each_round_removes_the_stated_share():
    net = _mlp()
    layers = net.levels().clone()
    for _ in range(3):
        counts = prune(net, 0.2, scope="layer", layers=layers)
        sizes = [n for n, _ in counts["groups"]]
        assert [k for _, k in counts["groups"]] == [round(0.2 * n) for n in sizes[:-1]] + [round(0.1 * sizes[-1])]
        assert counts["edges"] == sum(sizes) - counts["pruned"] - counts["dead_edges"]
    before = net.n_edges
    counts = prune(net, 0.3, scope="global")
    assert counts["pruned"] == round(0.3 * before)


def test_rewinding_restores_initial_values_of_survivors():
    net = _mlp()
    start = snapshot(net)
    init = _dense_weights(net)
    bias0 = net.bias.detach().clone()
    with torch.no_grad():
        net.weight.add_(torch.randn_like(net.weight))
        net.bias.add_(1.0)
    prune(net, 0.5)
    rewind(net, start)
    src, dst, w = net.edges()
    assert net.n_edges < len(init)
    assert torch.equal(w, torch.tensor([init[(s, d)] for s, d in zip(src.tolist(), dst.tolist())]))
    alive = net.neuron_alive.nonzero().squeeze(1)
    assert torch.equal(net.bias.detach()[alive[alive >= 12]], bias0[alive[alive >= 12]])
    reinit(net, start, seed=1)
    assert not torch.equal(net.edges()[2], w)
    src, dst, w = net.edges()
    assert bool((w.abs() <= start.fan_in[dst.long()].double().rsqrt() + 1e-6).all())  # the initial range


@pytest.mark.parametrize("rate", [0, 1, -0.1, 1.5, float("nan"), "0.2", True])
def test_bad_rate_is_one_config_error(rate):
    with pytest.raises(ConfigError, match="rate"):
        check_options(rate)
    with pytest.raises(ConfigError, match="rate"):
        prune(_mlp(), rate)


def test_find_tickets_levels_and_controls():
    net = _mlp()
    calls = []

    def train(n, rule):
        calls.append(rule)
        return {"acc": 0.0}

    out = find_tickets(net, train, rounds=2, rate=0.5)
    assert set(out) == {"ticket", "reinit", "random"}
    for rows in out.values():
        assert [r["level"] for r in rows] == [0, 1, 2]
        assert rows[0]["remaining"] == 1.0 and rows[2]["remaining"] < 0.35
    assert len(calls) == 1 + 2 * 3
    with pytest.raises(ConfigError, match="rewind_step"):
        find_tickets(_mlp(), train, rounds=1, rewind_step=5)  # train() takes no step


def test_lottery_experiment_tiny_run_and_report(tmp_path):
    from neuroplastic.experiments import get_experiment
    exp = get_experiment("lottery")
    with pytest.raises(ConfigError, match="rate"):
        exp.config(True, False, {"rate": 1.0})
    config = exp.config(True, False, {"data": "digits", "hidden": [16], "rounds": 2, "epochs": 1})
    assert config["output_rate"] == pytest.approx(0.1)
    rows = [{"task": j["task"], "variant": j["variant"], "seed": j["seed"],
             "metrics": exp.run_job(j, config, tmp_path)} for j in exp.jobs(config)]
    assert {c for r in rows for c in r["metrics"]["levels"]} == {"ticket", "reinit", "random"}
    for r in rows:  # the shared metric names: the sparsest net of the row's own control
        m = r["metrics"]
        last = m["levels"]["ticket" if r["variant"] == "imp" else "random"][-1]
        assert m["test_accuracy"] == last["test_accuracy"] and m["n_edges"] == last["edges"] < m["n_weights"]
        assert m["n_params"] == last["edges"] + last["hidden"] + 10 and m["n_hidden"] == last["hidden"]
    exp.report({"experiment": "lottery", "config": config, "rows": rows}, tmp_path)
    assert (tmp_path / "digits.png").stat().st_size > 1000
    assert "| 2 |" in (tmp_path / "report.md").read_text()


def test_rewind_step_resets_survivors_to_their_values_after_k_steps():
    net = _mlp()
    seen = {}

    def train(n, rule):
        for step in range(4):  # four "optimizer steps" that move every weight
            with torch.no_grad():
                n.weight.add_(0.01 * (step + 1))
            if rule is not None:
                rule.step(n)
        if rule is not None:
            seen["at_k"] = rule.snapshot
        return {}

    def train_and_check(n, rule):
        if rule is None and "at_k" in seen:  # a retraining: the net enters it rewound to step 2
            src, dst, w = n.edges()
            assert torch.allclose(w.double(), seen["at_k"].weights_of(src, dst))
            seen["checked"] = seen.get("checked", 0) + 1
        return train(n, rule)

    find_tickets(net, train_and_check, rounds=2, rate=0.3, rewind_step=2, controls=("ticket",))
    assert seen["at_k"] is not None and seen["checked"] == 2


def _pruned_big(kernel, seed=0):
    """A net whose hidden block (200 x 300 = 60,000 entries) is left at 8%: the csr kernel's case."""
    net = GraphNet.mlp(16, [300, 200], 5, activation="relu", seed=seed, kernel=kernel)
    prune(net, 0.92, scope="layer", output_rate=0.3)
    return net


def test_auto_kernel_runs_a_heavily_pruned_level_as_csr_and_a_full_one_dense():
    net = _pruned_big("auto")
    assert [lv.kernel for lv in net.plan().levels] == ["dense", "csr", "dense"]
    assert net.edge_capacity == max(16, net.n_edges)  # pruning packed the storage


@pytest.mark.parametrize("kernel", ["csr", "sparse"])
def test_sparse_kernels_give_the_dense_kernels_outputs_and_gradients(kernel):
    torch.manual_seed(0)
    ours, ref = _pruned_big(kernel), _pruned_big("dense")
    assert all(lv.kernel == kernel for lv in ours.plan().levels)
    x = torch.randn(9, 16)
    xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    outs = [net(xi) for net, xi in zip((ours, ref), xs)]
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    for out in outs:
        out.square().sum().backward()
    assert torch.allclose(ours.weight.grad, ref.weight.grad, atol=1e-4)
    assert torch.allclose(ours.bias.grad, ref.bias.grad, atol=1e-4)
    assert torch.allclose(xs[0].grad, xs[1].grad, atol=1e-5)
    assert torch.allclose(ours.to_module()(x), outs[1], atol=1e-5)  # export materialises the block


def test_csr_kernel_with_unpacked_edges_gathers_its_weights():
    net = GraphNet.mlp(16, [300, 200], 5, activation="relu", seed=0, kernel="csr")
    ref = GraphNet.mlp(16, [300, 200], 5, activation="relu", seed=0, kernel="dense")
    for n in (net, ref):
        prune(n, 0.9, scope="layer", pack=False)
    assert net.edge_capacity > net.n_edges and all(lv.edge_range is None for lv in net.plan().levels)
    x = torch.randn(4, 16)
    assert torch.allclose(net(x), ref(x), atol=1e-5)


def test_csr_kernel_is_refused_for_a_recurrent_net():
    with pytest.raises(ConfigError, match="csr"):
        GraphNet(3, 2, mode="recurrent", steps=2, kernel="csr")


def _write_idx(path, array, magic_type=0x08, truncate=0):
    """An IDX file as MNIST's: 0, 0, the element type, the number of dimensions, big-endian sizes."""
    import struct
    data = bytes([0, 0, magic_type, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(data[:len(data) - truncate])


def _idx_dir(tmp_path, n_train=120, n_test=40):
    import numpy as np
    rng = np.random.default_rng(0)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n, dtype=np.uint8) % 3
        x = (rng.random((n, 6, 6)) * 60).astype(np.uint8)
        x[np.arange(n), y.astype(int) + 1, y.astype(int) + 1] = 255   # one bright pixel per class
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte", x)
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte", y)
    return tmp_path


def test_lottery_reads_mnist_idx_files_from_a_directory(tmp_path):
    from neuroplastic.experiments import get_experiment
    exp = get_experiment("lottery")
    (tmp_path / "mnist").mkdir()
    folder = _idx_dir(tmp_path / "mnist")
    config = exp.config(True, False, {"data": str(folder), "hidden": [8], "rounds": 1, "epochs": 2})
    job = exp.jobs(config)[0]
    metrics = exp.run_job(job, config, tmp_path)
    assert metrics["n_weights"] == 36 * 8 + 8 * 3    # 6x6 pixels in, 3 classes out
    assert [m["level"] for m in metrics["levels"]["ticket"]] == [0, 1]


@pytest.mark.parametrize("damage, fragment", [
    ({"truncate": 5}, "truncated"),                 # image bytes missing
    ({"magic_type": 0x09}, "not an unsigned-byte IDX file"),   # wrong magic number
    ({"truncate": 10_000}, "truncated"),            # the header itself cut short
])
def test_a_damaged_idx_file_is_one_line_and_exit_2(tmp_path, capsys, damage, fragment):
    import numpy as np

    from neuroplastic.cli import main
    folder = tmp_path / "mnist"
    folder.mkdir()
    _idx_dir(folder)
    images = (np.arange(120 * 36) % 200).astype(np.uint8).reshape(120, 6, 6)
    path = folder / "train-images-idx3-ubyte"
    if damage.get("truncate", 0) >= 10_000:
        path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    else:
        _write_idx(path, images, **damage)
    assert main(["run", "lottery", "--quick", "--data", str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("stem, array, fragment", [
    ("t10k-images-idx3-ubyte", np.zeros((40, 5, 5), dtype=np.uint8), "train images are 6x6 pixels but t10k images 5x5"),
    ("t10k-labels-idx1-ubyte", np.full(40, 7, dtype=np.uint8), "t10k labels run up to 7 but the train labels only"),
    ("train-labels-idx1-ubyte", np.zeros(120, dtype=np.uint8), "train labels hold a single class"),
])
def test_idx_train_and_test_sets_that_do_not_match_are_one_line_and_exit_2(tmp_path, capsys, stem, array, fragment):
    from neuroplastic.cli import main
    folder = tmp_path / "mnist"
    folder.mkdir()
    _idx_dir(folder)
    _write_idx(folder / stem, array)
    assert main(["run", "lottery", "--quick", "--data", str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_lottery_on_a_distilled_cartpole_policy_measures_returns(tmp_path):
    from neuroplastic.experiments import get_experiment
    exp = get_experiment("lottery")
    config = exp.config(True, False, {"data": "CartPole-v1", "hidden": [16], "rounds": 1, "epochs": 2,
                                      "eval_episodes": 3, "policy_episodes": 1, "variants": "imp"})
    metrics = exp.run_job(exp.jobs(config)[0], config, tmp_path)
    for row in metrics["levels"]["ticket"] + metrics["levels"]["reinit"]:
        assert 0 < row["return_mean"] <= 500 and 0 <= row["test_accuracy"] <= 1
        assert row["converge_iter"] <= row["early_stop_iter"] <= row["budget_iter"]
    with pytest.raises(ConfigError, match="nosuch"):
        exp.config(True, False, {"data": "nosuch-v0"})


def test_lottery_experiment_rewinds_to_an_early_iteration_in_a_real_training(tmp_path):
    from neuroplastic.experiments import get_experiment
    from neuroplastic.prune import RewindPoint
    exp = get_experiment("lottery")
    config = exp.config(True, False, {"data": "digits", "hidden": [16], "rounds": 1, "epochs": 1,
                                      "rewind_step": 3, "variants": "imp"})
    metrics = exp.run_job(exp.jobs(config)[0], config, tmp_path)
    assert [m["level"] for m in metrics["levels"]["ticket"]] == [0, 1]
    point = RewindPoint(2)
    net = _mlp()
    for _ in range(3):
        point.step(net)
    again = RewindPoint(5)
    again.load_state_dict(point.state_dict())
    assert again.at == 2 and torch.equal(again.snapshot.weight, point.snapshot.weight)
