import os
import subprocess
import sys

import pytest
import torch

import neuroplastic as npl
from conftest import trained


def grown_net():
    net = npl.GraphNet.mlp(3, [4], 2, seed=0)
    e = npl.Edits()
    h = e.add_neuron(between=(0, 3), weight_out=0.4)
    e.add_edge(h, 4, weight=-0.3)
    e.add_edge(1, 4, weight=0.2)
    net.apply_edits(e)
    return net


@pytest.mark.parametrize("mode", ["dag", "recurrent"])
def test_to_module_equals_graphnet(mode):
    net = grown_net()
    if mode == "recurrent":
        src, dst, w = net.edges()
        net = npl.GraphNet.from_edges(3, 2, net.n_hidden + 2, src, dst, weight=w, mode="recurrent", steps=3)
    module = net.to_module()
    x = torch.randn(6, 3)
    assert torch.allclose(module(x), net(x), atol=1e-6)
    assert "neuroplastic" not in type(module).__module__


def test_exported_module_loads_without_the_library(tmp_path):
    net = grown_net()
    path = tmp_path / "policy.pt"
    torch.save(net.to_module(), path)
    x = torch.randn(4, 3)
    expected = net(x).detach()
    torch.save(x, tmp_path / "x.pt")
    code = ("import sys, torch; sys.modules['neuroplastic'] = None\n"  # importing it would fail
            f"m = torch.load({str(path)!r}, weights_only=False)\n"
            f"print(repr(m(torch.load({str(tmp_path / 'x.pt')!r})).tolist()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": ""}, cwd=tmp_path)
    assert torch.allclose(torch.tensor(eval(out.stdout)), expected, atol=1e-6)


def test_onnx_export_matches(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = grown_net()
    net.export_onnx(tmp_path / "net.onnx")
    x = torch.randn(5, 3)
    session = ort.InferenceSession(str(tmp_path / "net.onnx"))
    (y,) = session.run(None, {"x": x.numpy()})
    assert torch.allclose(torch.from_numpy(y), net(x).detach(), atol=1e-5)


def test_save_load_roundtrip_with_optimizer_and_rule(tmp_path):
    net = grown_net()
    opt = trained(net)
    spm = npl.rules.SPM(window=5, interval=5, warmup=5, min_age=5)
    for _ in range(7):
        spm.observe(net)
    npl.save(tmp_path / "c.ckpt", net, optimizer=opt, rule=spm, step=7)
    state = npl.load(tmp_path / "c.ckpt")
    loaded = state["net"]
    x = torch.randn(5, 3)
    assert torch.equal(loaded(x), net(x))
    assert (loaded.n_hidden, loaded.n_edges, state["step"]) == (net.n_hidden, net.n_edges, 7)
    opt2 = torch.optim.Adam(loaded.parameters(), lr=1e-2)
    npl.restore_optimizer(state, opt2)
    for name in ("weight", "bias"):
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(opt2.state[getattr(loaded, name)][key], opt.state[getattr(net, name)][key])
    spm2 = npl.rules.SPM()
    spm2.load_state_dict(state["rule_state"])
    assert spm2.t == 7 and spm2.config.window == 5
    # editing continues to work on the loaded net (the topology index is rebuilt)
    loaded.apply_edits(npl.Edits().add_edge(2, 3, weight=0.0), optimizer=opt2)
    assert loaded.n_edges == net.n_edges + 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_truncated_tampered_and_foreign_checkpoints_are_refused(tmp_path):
    path = tmp_path / "c.ckpt"
    npl.save(path, grown_net())
    data = path.read_bytes()
    (tmp_path / "short.ckpt").write_bytes(data[: len(data) // 2])
    tampered = bytearray(data)
    tampered[-100] ^= 0xFF
    (tmp_path / "tampered.ckpt").write_bytes(bytes(tampered))
    torch.save({"x": 1}, tmp_path / "foreign.ckpt")
    for name, message in (("short", "truncated or corrupted"), ("tampered", "truncated or corrupted"),
                          ("foreign", "not a neuroplastic checkpoint"), ("missing", "cannot read")):
        with pytest.raises(npl.CheckpointError, match=message):
            npl.load(tmp_path / f"{name}.ckpt")


def test_checkpoint_with_pickled_code_is_refused_even_with_valid_checksum(tmp_path):
    import hashlib
    import io

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    buffer = io.BytesIO()
    torch.save({"net": Evil()}, buffer)
    body = buffer.getvalue()
    from neuroplastic.core.checkpoint import MAGIC
    (tmp_path / "evil.ckpt").write_bytes(MAGIC + hashlib.sha256(body).digest() + body)
    with pytest.raises(npl.CheckpointError):
        npl.load(tmp_path / "evil.ckpt")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("payload, message", [
    ({"net": None}, "optimizer"),                                      # a key missing
    ({"net": None, "optimizer": {"state": {}}, "rule": None, "rng": {}, "step": 0, "extra": {}}, "groups"),
    ({"net": None, "optimizer": None, "rule": None, "rng": {}, "step": "abc", "extra": {}}, "step 'abc'"),
])
def test_a_checkpoint_with_a_valid_checksum_but_another_layout_is_a_checkpoint_error(tmp_path, payload, message):
    import hashlib
    import io

    from neuroplastic.core.checkpoint import MAGIC
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    (tmp_path / "odd.ckpt").write_bytes(MAGIC + hashlib.sha256(body).digest() + body)
    with pytest.raises(npl.CheckpointError, match=message):
        npl.load(tmp_path / "odd.ckpt")


def test_loaded_optimizer_state_is_a_torch_state_dict(tmp_path):
    net = grown_net()
    opt = trained(net)
    spm = npl.rules.SPM(window=5)
    npl.save(tmp_path / "c.ckpt", net, optimizer=opt, rule=spm, step=3)
    state = npl.load(tmp_path / "c.ckpt")
    opt2 = torch.optim.Adam(state["net"].parameters(), lr=0.5)
    opt2.load_state_dict(state["optimizer"])  # the names npl.save takes are the names load gives
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for name in ("weight", "bias"):
        assert torch.equal(opt2.state[getattr(state["net"], name)]["exp_avg_sq"],
                           opt.state[getattr(net, name)]["exp_avg_sq"])
    npl.rules.SPM().load_state_dict(state["rule"])


def test_float64_net_round_trips_and_a_directory_is_not_a_checkpoint_path(tmp_path):
    net = npl.GraphNet(3, 2, dtype=torch.float64, seed=1)
    npl.save(tmp_path / "d.ckpt", net)
    loaded = npl.load(tmp_path / "d.ckpt")["net"]
    x = torch.randn(4, 3, dtype=torch.float64)
    assert loaded.weight.dtype == torch.float64 and torch.equal(loaded(x), net(x))
    with pytest.raises(npl.CheckpointError, match="directory"):
        npl.save(tmp_path, net)


def test_numpy_values_are_saved_as_plain_data_so_the_file_loads(tmp_path):
    import numpy as np
    net = npl.URN(4, 2, size=20, c_weight=np.float64(1e-3), seed=np.int64(3))
    path = tmp_path / "u.ckpt"
    npl.save(path, net, rule=npl.rules.SPM(window=np.int64(10)),
             extra={"a": np.arange(3), "b": np.float64(1.5), "where": tmp_path, "by_seed": {np.int64(3): 1}})
    state = npl.load(path)
    assert state["extra"]["by_seed"] == {3: 1}
    assert isinstance(state["net"], npl.URN) and state["net"].config()["seed"] == 3
    assert state["extra"]["b"] == 1.5 and state["extra"]["where"] == str(tmp_path)
    assert torch.equal(state["extra"]["a"], torch.arange(3))


@pytest.mark.parametrize("options, message", [
    (dict(step="x"), "step='x' must be an integer"),
    (dict(rule=object()), "no state_dict"),
    (dict(extra={"f": open}), r"\['extra'\]\['f'\]: a value of type builtin"),
    (dict(extra={object(): 1}), r"\['extra'\]: a key of type object"),
    (dict(optimizer="adam"), "not a torch.optim.Optimizer"),
    (dict(optimizer=torch.optim.Adam(torch.nn.Linear(2, 2).parameters())), "not this network's"),
])
def test_what_cannot_be_saved_is_refused_in_one_line_and_writes_nothing(tmp_path, options, message):
    with pytest.raises(npl.CheckpointError, match=message):
        npl.save(tmp_path / "x.ckpt", npl.GraphNet(3, 2), **options)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "afile").write_text("x")
    with pytest.raises(npl.CheckpointError, match="is a file, not a directory"):
        npl.save(tmp_path / "afile" / "x.ckpt", npl.GraphNet(3, 2))


def test_an_atomic_write_gives_a_new_file_the_umasks_mode_and_keeps_an_old_files_mode(tmp_path):
    import stat

    from neuroplastic.core.checkpoint import atomic_write_bytes
    old_umask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "new.json", b"{}")
        assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o644
        (tmp_path / "old.json").write_bytes(b"")
        os.chmod(tmp_path / "old.json", 0o640)
        atomic_write_bytes(tmp_path / "old.json", b"{}")
        assert stat.S_IMODE((tmp_path / "old.json").stat().st_mode) == 0o640
    finally:
        os.umask(old_umask)


@pytest.mark.parametrize("path", [3, None])
def test_a_checkpoint_path_that_is_no_path_is_a_checkpoint_error(path):
    from neuroplastic.evolve import NEAT
    for call in (lambda: npl.save(path, None), lambda: npl.load(path), lambda: NEAT.load(path)):
        with pytest.raises(npl.CheckpointError, match="must be a str or os.PathLike"):
            call()
