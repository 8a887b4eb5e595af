import copy
import json

import numpy as np
import pytest
import torch

import neuroplastic as npl
from neuroplastic.analysis import structure
from neuroplastic.cli import main
from neuroplastic.tasks.datasets import grid_positions, read_idx
from neuroplastic.train.urn import URN, to_sequential


def recurrent_from(n_in, n_out, n_hidden, edges, steps, bias=None):
    src, dst, w = zip(*edges)
    return npl.GraphNet.from_edges(n_in, n_out, n_hidden, list(src), list(dst), weight=list(w),
                                   bias=bias, mode="recurrent", steps=steps, activation="relu")


def planted_mlp(extra=()):
    """inputs 0,1 -> hidden 4,5,6 -> hidden 7,8 -> outputs 2,3, planted in a recurrent W."""
    g = torch.Generator().manual_seed(0)
    edges = [(i, h, 0.5 + float(torch.rand(1, generator=g))) for i in (0, 1) for h in (4, 5, 6)]
    edges += [(h, k, 0.5 + float(torch.rand(1, generator=g))) for h in (4, 5, 6) for k in (7, 8)]
    edges += [(k, o, 0.5 + float(torch.rand(1, generator=g))) for k in (7, 8) for o in (2, 3)]
    return recurrent_from(2, 2, 5, edges + list(extra), steps=3, bias=[0.0] * 7)


def test_planted_mlp_is_detected_and_exports_exactly():
    net = planted_mlp()
    x = torch.rand(32, 2)
    for probe in (None, x):
        s = structure(net, probe)
        assert s["is_mlp"] and s["depth"] == 2 and s["widths"] == [3, 2]
        assert s["mlp_score"] == pytest.approx(1.0) and s["skip_share"] == 0
    seq = to_sequential(net, s["layer_of"])
    assert isinstance(seq, torch.nn.Sequential)
    assert torch.allclose(seq(x), net(x), atol=1e-6)


def test_to_sequential_refuses_a_net_with_per_neuron_activations():
    net = planted_mlp()
    s = structure(net)
    net.set_activations([4], "tanh")
    with pytest.raises(npl.ConfigError, match="to_module"):
        to_sequential(net, s["layer_of"])


def test_export_folds_input_independent_neurons_into_biases():
    """Hidden neuron 9 sees no input: relu(0.5) feeds layer 2, which must come out as a bias."""
    edges = [(0, 4, 0.7), (1, 5, -0.4), (4, 6, 0.9), (5, 7, 0.6), (6, 2, 1.1), (7, 3, -0.8), (9, 6, 0.3),
             (9, 7, -0.2)]
    net = recurrent_from(2, 2, 6, edges, steps=3, bias=[0.1, 0.2, 0.05, -0.1, 0.0, 0.0, 0.0, 0.5])
    x = torch.rand(16, 2)
    s = structure(net, x)
    assert s["is_mlp"]
    seq = to_sequential(net, s["layer_of"])
    assert torch.allclose(seq(x), net(x), atol=1e-6)


def test_residual_block_is_detected_as_skip_not_mlp():
    net = planted_mlp(extra=[(4, 4, 1.0), (5, 5, 1.0), (4, 2, 0.8), (6, 3, 0.8)])
    s = structure(net)
    assert not s["is_mlp"]
    assert s["skip_share"] > 0.15 and s["self_loop_share"] > 0.05


def test_locally_connected_layer_vs_dense_layer():
    side = 10
    pos = grid_positions(side, side)
    n_in, n_out = side * side, 1
    hidden = list(range(n_in + n_out, n_in + n_out + 16))
    centres = [(r, c) for r in (1, 3, 6, 8) for c in (1, 3, 6, 8)]
    local, dense = [], []
    g = np.random.default_rng(0)
    for h, (r, c) in zip(hidden, centres):
        for i in range(n_in):
            w = 0.5 + g.random()
            if abs(pos[i][0] - r) <= 1 and abs(pos[i][1] - c) <= 1:
                local.append((i, h, w))
            dense.append((i, h, w))
        local.append((h, n_in, 1.0))
        dense.append((h, n_in, 1.0))
    s_local = structure(recurrent_from(n_in, n_out, 16, local, 2), positions=pos)
    s_dense = structure(recurrent_from(n_in, n_out, 16, dense, 2), positions=pos)
    assert s_local["locality_index"] > 0.5
    assert abs(s_dense["locality_index"]) < 0.2


def test_random_dense_matrix_is_not_structured():
    net = npl.GraphNet.dense_recurrent(4, 2, 20, steps=3, seed=0)
    s = structure(net)
    assert not s["is_mlp"] and s["mlp_score"] < 0.5


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_in=10, n_out=3, size=12), "size=12"),
    (dict(n_in=10, n_out=3, size=50, steps=0), "steps=0"),
    (dict(n_in=10, n_out=3, size=50, c_weight=-1.0), "c_weight=-1.0"),
    (dict(n_in=4, n_out=2, size=50, positions=np.zeros((3, 2))), r"expected \(4, 2\)"),
])
def test_bad_urn_configuration(kwargs, message):
    with pytest.raises(npl.ConfigError, match=message):
        URN(**kwargs)


def test_compaction_preserves_outputs_and_optimizer_state():
    torch.manual_seed(0)
    net = URN(5, 2, size=40, steps=3, c_weight=1e-3)
    with torch.no_grad():  # what the proximal step leaves behind: most weights exactly zero
        net.weight[torch.rand(net.edge_capacity) < 0.9] = 0
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.randn(16, 5), torch.randint(0, 2, (16,))
    loss, _ = net.loss(x, y)
    loss.backward()
    opt.step()
    with torch.no_grad():
        net.weight[net.weight.abs() < 1e-3] = 0
    before = net(x).detach()
    net.track_edge_owners()
    uid_state = {int(u): float(m) for u, m, a in zip(net.edge_uid, opt.state[net.weight]["exp_avg"], net.edge_alive)
                 if a}
    removed = net.compact(optimizer=opt, threshold=0.0)
    assert removed["edges_removed"] > 0
    assert torch.allclose(net(x), before, atol=1e-6)
    for u, m, a in zip(net.edge_uid, opt.state[net.weight]["exp_avg"], net.edge_alive):
        if a:
            assert float(m) == uid_state[int(u)]


def test_quick_shells_run_is_accurate_and_layered(tmp_path):
    assert main(["run", "urn-shells", "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    import json
    row = json.loads((tmp_path / "results.json").read_text())["rows"][0]
    m = row["metrics"]
    assert m["test_accuracy"] >= 0.95
    s = m["structure"]
    assert s["depth"] == 4 - 1  # depth is set by the number of sweeps
    assert s["mlp_score"] > max(s["skip_share"], s["lateral_share"])
    assert (tmp_path / "report.md").exists() and list(tmp_path.glob("W_*.png"))
    # the regulators are what silences neurons: without them far more stay active
    free = tmp_path / "free"
    assert main(["run", "urn-shells", "--quick", "--no-progress", "--out", str(free),
                 "--set", "c_weight=0", "--set", "c_activity=0"]) == 0
    unregulated = json.loads((free / "results.json").read_text())["rows"][0]["metrics"]["structure"]
    assert s["active_neurons"] < 0.8 * unregulated["active_neurons"]


def test_locality_term_makes_digit_receptive_fields_more_local(tmp_path):
    assert main(["run", "urn-digits", "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    import json
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    index = {r["variant"]: r["metrics"]["structure"]["locality_index"] for r in rows}
    assert index["c_local=0.001"] > index["c_local=0"] + 0.05


def test_users_own_npz_data_and_bad_data(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 9)).astype(np.float32)
    y = (x[:, 0] + x[:, 4] > 0).astype(np.int64)
    np.savez(tmp_path / "mine.npz", X=x, y=y, positions=grid_positions(3, 3))
    out = tmp_path / "out"
    assert main(["run", "urn-digits", "--quick", "--no-progress", "--out", str(out),
                 "--data", str(tmp_path / "mine.npz")]) == 0
    assert (out / "results.json").exists()
    np.savez(tmp_path / "bad.npz", X=x, y=y, positions=np.zeros((4, 2)))
    code = main(["run", "urn-digits", "--quick", "--out", str(tmp_path / "o2"),
                 "--set", f"data='{tmp_path / 'bad.npz'}'"])
    assert code == 2 and "positions has shape (4, 2)" in capsys.readouterr().err


def test_idx_files_are_read(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    (tmp_path / "x-idx3-ubyte").write_bytes(header + images.tobytes())
    assert np.array_equal(read_idx(tmp_path / "x-idx3-ubyte"), images)
    (tmp_path / "short").write_bytes(header + images.tobytes()[:5])
    with pytest.raises(npl.ConfigError, match="truncated"):
        read_idx(tmp_path / "short")


def test_lifetime_compaction_during_training_keeps_learning():
    from neuroplastic.tasks.datasets import shells
    from neuroplastic.train.urn import accuracy, train_urn
    data = shells(n_train=1500, n_test=300)
    net = URN(10, 3, size=80, steps=3, c_weight=1e-3, c_activity=1e-4, seed=0)
    history = train_urn(net, data.x_train, data.y_train, epochs=20, ramp_epochs=5, compact_every=4)
    assert history[0]["n_edges"] == 80 * 80 - 10 * 80 - 3 * 70  # none into inputs or out of outputs
    assert history[-1]["n_edges"] < 0.6 * history[0]["n_edges"]  # compacted during training
    assert any("compaction_edges_removed" in h for h in history)
    assert accuracy(net, torch.tensor(data.x_test), torch.tensor(data.y_test)) > 0.85


def test_zero_compaction_during_the_ramp_removes_edges_and_keeps_the_logits():
    from neuroplastic.tasks.datasets import shells
    from neuroplastic.train.urn import train_urn
    data = shells(n_train=600, n_test=100)
    x = torch.tensor(data.x_test)
    kept = URN(10, 3, size=80, steps=3, c_weight=1e-3, c_activity=1e-4, seed=1)
    cut = copy.deepcopy(kept)
    train_urn(kept, data.x_train, data.y_train, epochs=1, ramp_epochs=10, seed=0)
    history = train_urn(cut, data.x_train, data.y_train, epochs=1, ramp_epochs=10, seed=0, compact_zeros_every=1)
    assert history[0]["compaction_edges_removed"] > 0
    assert cut.n_edges < kept.n_edges
    assert torch.allclose(cut(x), kept(x), atol=1e-6)  # only exact zeros (and dead neurons) went


def test_urn_training_resumed_from_its_epoch_checkpoint_equals_an_uninterrupted_run(tmp_path):
    from neuroplastic.tasks.datasets import shells
    from neuroplastic.train.urn import train_urn
    data = shells(n_train=500, n_test=100)
    options = dict(ramp_epochs=3, seed=0, compact_every=2, compact_zeros_every=1)
    whole = URN(10, 3, size=60, steps=3, c_weight=1e-3, c_activity=1e-4, seed=0)
    interrupted = copy.deepcopy(whole)
    expected = train_urn(whole, data.x_train, data.y_train, epochs=5, **options)
    train_urn(interrupted, data.x_train, data.y_train, epochs=2, checkpoint=tmp_path / "urn.ckpt", **options)
    fresh = URN(10, 3, size=60, steps=3, c_weight=1e-3, c_activity=1e-4, seed=0)  # a new process, say
    history = train_urn(fresh, data.x_train, data.y_train, epochs=5, checkpoint=tmp_path / "urn.ckpt", **options)
    assert [h["loss"] for h in history] == [h["loss"] for h in expected]
    assert fresh.n_edges == whole.n_edges
    assert torch.equal(fresh(torch.tensor(data.x_test)), whole(torch.tensor(data.x_test)))
    other = URN(10, 3, size=60, steps=3, c_weight=2e-3, c_activity=1e-4, seed=0)
    with pytest.raises(npl.CheckpointError, match="different URN run"):
        train_urn(other, data.x_train, data.y_train, epochs=5, checkpoint=tmp_path / "urn.ckpt", **options)


def test_urn_training_with_a_rule_resumes_the_rule_state_too(tmp_path):
    from neuroplastic.rules import SPM
    from neuroplastic.tasks.datasets import shells
    from neuroplastic.train.urn import train_urn
    data = shells(n_train=300, n_test=50)

    def spm():
        return SPM(window=4, interval=4, warmup=4, min_age=0, seed=0)
    whole = URN(10, 3, size=40, steps=3, c_weight=1e-3, seed=0)
    interrupted = copy.deepcopy(whole)
    expected = train_urn(whole, data.x_train, data.y_train, epochs=4, seed=0, rule=spm())
    train_urn(interrupted, data.x_train, data.y_train, epochs=2, seed=0, rule=spm(), checkpoint=tmp_path / "r.ckpt")
    fresh = URN(10, 3, size=40, steps=3, c_weight=1e-3, seed=0)
    history = train_urn(fresh, data.x_train, data.y_train, epochs=4, seed=0, rule=spm(), checkpoint=tmp_path / "r.ckpt")
    assert [h["loss"] for h in history] == [h["loss"] for h in expected]
    assert fresh.n_edges == whole.n_edges
    with pytest.raises(npl.CheckpointError, match="with a rule"):
        train_urn(URN(10, 3, size=40, steps=3, c_weight=1e-3, seed=0), data.x_train, data.y_train, epochs=4, seed=0,
                  checkpoint=tmp_path / "r.ckpt")


def test_mnist_style_idx_directory_is_a_dataset(tmp_path):
    import gzip

    from neuroplastic.tasks.datasets import load_data

    def idx(data: np.ndarray) -> bytes:
        return bytes([0, 0, 8, data.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in data.shape) + data.tobytes()

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("t10k", 6)):
        (tmp_path / f"{split}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(idx(rng.integers(0, 256, (n, 5, 4), dtype=np.uint8))))
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(idx(rng.integers(0, 10, n, dtype=np.uint8)))
    data = load_data(str(tmp_path))
    assert data.x_train.shape == (12, 20) and data.x_test.shape == (6, 20)
    assert data.positions.shape == (20, 2) and float(data.x_train.max()) <= 1.0


def test_parameter_count_leaves_out_input_biases_held_at_zero():
    net = URN(3, 2, size=10, steps=2)
    trainable_bias = 10 - 3  # hidden and output biases; the input biases never move
    assert net.n_params == net.n_edges + trainable_bias
    x = torch.randn(4, 3)
    net(x).sum().backward()
    assert torch.all(net.bias.grad[:3] == 0) and net.bias.grad[3:10].abs().sum() > 0


def test_urn_reads_w_as_a_masked_view_and_missing_pairs_stay_zero():
    torch.manual_seed(0)
    net = URN(3, 2, size=12, steps=3, c_weight=1e-3)
    assert net.plan().view  # no gather/scatter of S*S weights per step
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    for _ in range(5):
        loss, _ = net.loss(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.all(net.weight.detach()[~net.edge_alive] == 0)
    src, dst, w = net.edges()
    W = torch.zeros(12, 12).index_put((dst, src), w)
    h = torch.cat([x, torch.zeros(16, 9)], 1)
    for _ in range(3):  # the update of the paper written out: relu hidden, linear outputs
        z = h @ W.t() + net.bias.detach()[:12]
        h = torch.cat([torch.relu(z[:, :3]), z[:, 3:5], torch.relu(z[:, 5:])], 1)
    assert torch.allclose(net(x), h[:, 3:5], atol=1e-5)


def test_input_bias_hold_survives_copies_and_packing_keeps_the_locality_term():
    import copy
    import pickle
    net = URN(3, 2, size=10, steps=3, activation="tanh")
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        clone(torch.randn(4, 3)).sum().backward()
        assert torch.all(clone.bias.grad[:3] == 0)
    positions = np.array([[0, 0], [0, 1], [1, 0]], dtype=np.float32)
    net = URN(3, 2, size=12, steps=3, positions=positions, c_local=1e-3, proximal=False)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    src, dst, _ = net.edges()
    edits = npl.Edits()
    for s, d in list(zip(src.tolist(), dst.tolist()))[::2]:
        edits.remove_edge(s, d)
    net.apply_edits(edits, optimizer=opt)
    net.pack_edges(opt)
    loss, _ = net.loss(torch.randn(4, 3), torch.randint(0, 2, (4,)))  # the distance term fits the storage
    loss.backward()
    opt.step()
    assert net.edge_distance.numel() == net.edge_capacity == net.n_edges


def test_input_bias_hold_survives_neuron_storage_growth():
    net = URN(3, 2, size=8, steps=2, activation="tanh")  # relu(0) would hide the gradient
    edits = npl.Edits()
    for _ in range(net.capacity - net.n_neurons + 1):  # one past the capacity: bias is reallocated
        edits.add_neuron()
    net.apply_edits(edits)
    net(torch.randn(4, 3)).sum().backward()
    assert torch.all(net.bias.grad[:3] == 0) and net.bias.grad[3:8].abs().sum() > 0


def test_checkpoint_restores_a_urn_that_trains_on(tmp_path):
    positions = np.array([[0, 0], [0, 1], [1, 0]], dtype=np.float32)
    net = URN(3, 2, size=12, steps=3, positions=positions, c_local=1e-3, c_activity=0.0, seed=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    loss, _ = net.loss(x, y)
    loss.backward()
    opt.step()
    npl.save(tmp_path / "urn.ckpt", net, optimizer=opt, step=1)
    state = npl.load(tmp_path / "urn.ckpt")
    back = state["net"]
    assert isinstance(back, URN) and back.regulators == net.regulators and back.size == 12
    assert np.array_equal(back.positions, net.positions, equal_nan=True)
    assert torch.equal(back.edge_distance, net.edge_distance) and back.n_params == net.n_params
    assert torch.equal(back(x), net(x))
    loss, _ = back.loss(x, y)
    loss.backward()
    assert torch.all(back.bias.grad[:3] == 0)  # the input biases are held again


def test_user_data_with_class_names_images_and_bad_files(tmp_path, capsys):
    from neuroplastic.tasks.datasets import from_npz
    rng = np.random.default_rng(0)
    images = rng.random((40, 4, 5)).astype(np.float32)
    np.savez(tmp_path / "named.npz", X=images, y=np.array(["cat", "dog"] * 20))
    data = from_npz(tmp_path / "named.npz")
    assert data.n_in == 20 and data.n_classes == 2 and data.positions.shape == (20, 2)  # a pixel grid
    np.savez(tmp_path / "nan.npz", X=np.full((10, 3), np.nan), y=np.zeros(10, int))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "named.npz").read_bytes()[:500])
    x, y = rng.random((200, 5)), np.arange(200) % 2
    np.savez(tmp_path / "far_ids.npz", X=x, y=y * 100_000)  # would need 100,001 output neurons
    np.savez(tmp_path / "one_hot.npz", X=x, y=np.eye(2)[y])
    np.savez(tmp_path / "one_class.npz", X=x, y=np.zeros(200, int))
    np.savez(tmp_path / "nan_positions.npz", X=x, y=y, positions=np.full((5, 2), np.nan))
    np.savez(tmp_path / "complex.npz", X=x * 1j, y=y)
    for bad, fragment in (("nan.npz", "NaN"), ("cut.npz", "not a readable .npz"),
                          ("far_ids.npz", "labels run up to 100000"), ("one_hot.npz", "y.argmax(1)"),
                          ("one_class.npz", "single class"), ("nan_positions.npz", "positions hold NaN"),
                          ("complex.npz", "X is complex")):
        code = main(["run", "urn-digits", "--quick", "--out", str(tmp_path / bad), "--data", str(tmp_path / bad)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and fragment in err and len(err.splitlines()) == 1


def test_quick_run_makes_room_for_wide_user_data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 130)).astype(np.float32)
    np.savez(tmp_path / "wide.npz", X=x, y=(x[:, 0] > 0).astype(int))
    out = tmp_path / "out"
    assert main(["run", "urn-shells", "--quick", "--no-progress", "--out", str(out), "--set", "epochs=1",
                 "--data", str(tmp_path / "wide.npz")]) == 0
    assert json.loads((out / "results.json").read_text())["config"]["size"] >= 132


def test_misspelled_regulator_and_bad_positions_are_config_errors():
    with pytest.raises(npl.ConfigError, match="c_wieght"):
        URN(3, 2, size=10, c_wieght=1e-3)
    net = planted_mlp()
    with pytest.raises(npl.ConfigError, match="positions"):
        structure(net, positions=np.zeros((1, 2)))
    with pytest.raises(npl.ConfigError, match="GraphNet"):
        structure(torch.nn.Linear(3, 2))


def test_structure_reads_a_urns_own_positions():
    positions = grid_positions(2, 2)
    net = URN(4, 2, size=12, steps=2, positions=positions)
    assert structure(net)["locality_radius"] is not None
    assert structure(net)["locality_radius"] == structure(net, positions=positions)["locality_radius"]


def test_train_urn_is_public_and_checks_its_data():
    net = npl.URN(3, 2, size=12, steps=2)
    history = npl.train_urn(net, torch.randn(40, 3), torch.randint(0, 2, (40,)), epochs=2)
    assert [h["epoch"] for h in history] == [1, 2]
    with pytest.raises(npl.ConfigError, match=r"\(n, 3\)"):
        npl.train_urn(net, np.zeros((40, 4)), np.zeros(40, int), epochs=1)
    with pytest.raises(npl.ConfigError, match="labels"):
        npl.train_urn(net, np.zeros((40, 3)), np.full(40, 5), epochs=1)


def test_dag_layers_are_levels_so_a_path_around_a_block_is_a_skip():
    # 0 -> h2 -> h3 -> out, plus 0 -> h3: h3 sits at level 2; 0 -> h3 skips a layer
    net = npl.GraphNet.from_edges(1, 1, 2, [0, 2, 0, 3], [2, 3, 3, 1], weight=[1.0] * 4)
    s = structure(net)
    assert s["depth"] == 2 and s["widths"] == [1, 1] and s["layer_of"] == {2: 1, 3: 2}
    assert s["skip_share"] == pytest.approx(0.25) and s["lateral_share"] == 0


@pytest.mark.parametrize("hidden_bias", [0.0, 0.5])
def test_recurrent_layers_from_data_do_not_depend_on_biases(hidden_bias):
    # a chain 0 -> 2 -> 3 -> 4 -> out run for 4 sweeps: layers 1, 2, 3 whatever the biases,
    # which only add activity that the input does not cause
    net = npl.GraphNet.from_edges(1, 1, 3, [0, 2, 3, 4], [2, 3, 4, 1], weight=[1.0] * 4,
                                  mode="recurrent", steps=4)
    with torch.no_grad():
        net.bias[2:5] = hidden_bias
    x = np.random.default_rng(0).normal(size=(32, 1))  # numpy data is accepted too
    s = structure(net, x)
    assert s["layer_of"] == {2: 1, 3: 2, 4: 3} and s["mlp_score"] == pytest.approx(1.0)


def test_structure_on_float64_nets_and_bad_thresholds():
    net = npl.GraphNet.mlp(3, [4], 2, dtype=torch.float64)
    assert structure(net, positions=np.random.default_rng(0).random((3, 2)))["depth"] == 1
    for bad in (-0.1, 1.0, float("nan"), "high"):
        with pytest.raises(npl.ConfigError, match="threshold"):
            structure(net, threshold=bad)


@pytest.mark.parametrize("change, fragment", [
    (dict(y=np.array([0.3, 1.5] * 10)), "integer class ids"),
    (dict(y=np.array(["a", "b"] * 10)), "integer class ids"),
    (dict(x=np.zeros((0, 3)), y=np.zeros(0, int)), "n >= 1"),
    (dict(x=np.full((20, 3), np.nan)), "NaN"),
    (dict(device="tpu"), "device='tpu'"),
    (dict(lr=float("inf")), "lr=inf"),
    (dict(compact_every=-1), "compact_every"),
])
def test_train_urn_refuses_bad_data_and_options(change, fragment):
    net = URN(3, 2, size=12, steps=2)
    args = {"x": np.random.default_rng(0).normal(size=(20, 3)), "y": np.arange(20) % 2, "epochs": 1, **change}
    with pytest.raises(npl.ConfigError, match=fragment):
        npl.train_urn(net, args.pop("x"), args.pop("y"), **args)


def test_locality_needs_positions_and_structure_checks_its_inputs(tmp_path, capsys):
    with pytest.raises(npl.ConfigError, match="c_local=0.5 needs positions"):
        URN(4, 2, size=10, c_local=0.5)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "flat.npz", X=rng.random((60, 5)), y=np.arange(60) % 3)
    code = main(["run", "urn-digits", "--quick", "--out", str(tmp_path / "o"), "--data", str(tmp_path / "flat.npz")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs input positions" in err and len(err.splitlines()) == 1
    net = npl.GraphNet.mlp(3, [4], 2)
    assert structure(net, x=np.ones(3))["depth"] == 1  # one sample, 1-D
    for bad in (np.full((5, 3), np.nan), np.zeros((0, 3)), "abc", np.ones((5, 4))):
        with pytest.raises(npl.ConfigError, match="x "):
            structure(net, x=bad)
    for bad in ("abc", np.full((3, 2), np.nan)):
        with pytest.raises(npl.ConfigError, match="positions"):
            structure(net, positions=bad)
