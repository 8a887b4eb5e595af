"""Per-neuron activations of a GraphNet (`set_activations`): the forward, every kernel, the
recurrent mode, export, state dicts, checkpoints and edits all follow each neuron's own."""
import math

import pytest
import torch

import neuroplastic as npl

KERNELS = ["auto", "dense", "sparse", "csr"]


def two_hidden(kernel="auto"):
    """2 inputs -> hidden 3, 4 -> output 2, weights and biases fixed, written out by hand below."""
    return npl.GraphNet.from_edges(2, 1, 2, [0, 1, 0, 1, 3, 4], [3, 3, 4, 4, 2, 2],
                                   weight=[0.5, -1.0, 1.5, 0.25, 2.0, -0.75], bias=[0.1, -0.2, 0.3],
                                   activation="tanh", output_activation="sigmoid", kernel=kernel)


def by_hand(x, hidden_acts, out_act):
    w, b = [0.5, -1.0, 1.5, 0.25, 2.0, -0.75], [0.1, -0.2, 0.3]
    h3 = hidden_acts[0](w[0] * x[:, 0] + w[1] * x[:, 1] + b[1])
    h4 = hidden_acts[1](w[2] * x[:, 0] + w[3] * x[:, 1] + b[2])
    return out_act(w[4] * h3 + w[5] * h4 + b[0])[:, None]


@pytest.mark.parametrize("kernel", KERNELS)
def test_each_neuron_runs_its_own_activation_on_every_kernel(kernel):
    net = two_hidden(kernel)
    x = torch.randn(9, 2)
    torch.testing.assert_close(net(x), by_hand(x, (torch.tanh, torch.tanh), torch.sigmoid))
    net.set_activations([3, 2], ["relu", "identity"])
    assert net.mixed_activations
    assert net.neuron_activations() == {0: "tanh", 1: "tanh", 2: "identity", 3: "relu", 4: "tanh"}
    torch.testing.assert_close(net(x), by_hand(x, (torch.relu, torch.tanh), lambda z: z))


def test_gradients_flow_through_mixed_activations():
    net = two_hidden().set_activations(3, "sigmoid")
    x = torch.randn(4, 2)
    net(x).sum().backward()
    w = torch.tensor([0.5, -1.0, 1.5, 0.25, 2.0, -0.75], requires_grad=True)
    h3 = torch.sigmoid(w[0] * x[:, 0] + w[1] * x[:, 1] - 0.2)
    h4 = torch.tanh(w[2] * x[:, 0] + w[3] * x[:, 1] + 0.3)
    torch.sigmoid(w[4] * h3 + w[5] * h4 + 0.1).sum().backward()
    live = net.edge_alive.nonzero().squeeze(1)
    torch.testing.assert_close(net.weight.grad[live], w.grad)


@pytest.mark.parametrize("clamp", [False, True])
def test_recurrent_sweeps_apply_each_neurons_activation(clamp):
    net = npl.GraphNet.dense_recurrent(2, 1, 3, steps=3, clamp_inputs=clamp, seed=1)
    names = {0: "identity", 1: "relu", 2: "sigmoid", 3: "tanh", 4: "relu", 5: "identity"}
    net.set_activations(list(names), list(names.values()))
    x = torch.randn(5, 2)
    src, dst, w = net.edges()
    W = torch.zeros(6, 6)
    W[dst.long(), src.long()] = w
    fns = {"identity": lambda z: z, "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
    h = torch.cat([x, torch.zeros(5, 4)], 1)
    for _ in range(3):
        z = h @ W.t() + net.bias.detach()[:6]
        h = torch.stack([fns[names[i]](z[:, i]) for i in range(6)], 1)
        if clamp:
            h[:, :2] = x
    torch.testing.assert_close(net(x), h[:, 2:3])


def test_the_exported_module_and_a_reloaded_copy_keep_the_activations(tmp_path):
    net = two_hidden().set_activations([3, 4], ["relu", "identity"])
    x = torch.randn(6, 2)
    module = net.to_module()
    torch.testing.assert_close(module(x), net(x))
    torch.save(module, tmp_path / "m.pt")
    torch.testing.assert_close(torch.load(tmp_path / "m.pt", weights_only=False)(x), net(x))
    recurrent = npl.GraphNet.dense_recurrent(2, 1, 2, steps=2, seed=0).set_activations([3], "sigmoid")
    torch.testing.assert_close(recurrent.to_module()(x), recurrent(x))


def test_state_dicts_and_checkpoints_carry_the_activations(tmp_path):
    net = two_hidden().set_activations(3, "relu")
    x = torch.randn(6, 2)
    fresh = npl.GraphNet(2, 1, activation="tanh", output_activation="sigmoid")
    fresh.load_state_dict(net.state_dict())
    torch.testing.assert_close(fresh(x), net(x))
    npl.save(tmp_path / "net.ckpt", net)
    loaded = npl.load(tmp_path / "net.ckpt")["net"]
    assert loaded.neuron_activations() == net.neuron_activations()
    torch.testing.assert_close(loaded(x), net(x))
    # a state dict saved before per-neuron activations existed still loads, as a uniform net
    old = {k: v for k, v in two_hidden().state_dict().items() if k != "neuron_activation"}
    back = npl.GraphNet(2, 1, activation="tanh", output_activation="sigmoid")
    back.load_state_dict(old)
    assert not back.mixed_activations
    torch.testing.assert_close(back(x), two_hidden()(x))


def test_a_partial_state_dict_leaves_the_activations_as_they_are():
    net = two_hidden().set_activations(3, "relu")
    state = net.state_dict()
    net.load_state_dict({"weight": state["weight"] * 2, "bias": state["bias"]}, strict=False)
    assert net.neuron_activations()[3] == "relu"


def test_a_state_dict_with_activation_codes_that_do_not_fit_is_refused():
    state = two_hidden().set_activations(3, "relu").state_dict()
    state["neuron_activation"] = torch.full_like(state["neuron_activation"], 9)
    with pytest.raises(npl.CheckpointError, match="per-neuron activations"):
        npl.GraphNet(2, 1, activation="tanh", output_activation="sigmoid").load_state_dict(state)


def test_new_neurons_of_an_edit_get_the_nets_activation_and_growth_keeps_the_others():
    net = two_hidden().set_activations(3, "relu")
    e = npl.Edits()
    refs = [e.add_neuron(between=(0, 2)) for _ in range(20)]  # past the capacity: storage grows
    net.apply_edits(e)
    acts = net.neuron_activations()
    assert acts[3] == "relu" and acts[4] == "tanh" and all(acts[int(h)] == "tanh" for h in refs)


def test_set_activations_refuses_unknown_names_dead_neurons_and_mismatched_lists():
    net = two_hidden()
    with pytest.raises(npl.ConfigError, match="'sin' is not supported"):
        net.set_activations(3, "sin")
    with pytest.raises(npl.ConfigError, match="live neuron"):
        net.set_activations(12, "relu")
    with pytest.raises(npl.ConfigError, match="2 neurons but 1 activations"):
        net.set_activations([3, 4], ["relu"])
    assert not net.mixed_activations


def test_onnx_export_keeps_the_activations(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = two_hidden().set_activations([3, 4], ["relu", "identity"])
    net.export_onnx(tmp_path / "net.onnx", batch_size=4)
    x = torch.randn(4, 2)
    (y,) = ort.InferenceSession(str(tmp_path / "net.onnx")).run(None, {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(y), net(x).detach())


def test_a_neuron_that_refills_a_freed_slot_runs_the_nets_activation_in_remove_dead_folding():
    x = torch.randn(4, 2)
    for same_batch in (False, True):
        net = npl.GraphNet.mlp(2, [3], 1, seed=0).set_activations(3, "relu")
        reference = npl.GraphNet.mlp(2, [3], 1, seed=0).set_activations(3, "relu")
        reference.apply_edits(npl.Edits().remove_neuron(3))
        e = npl.Edits()
        if same_batch:
            e.remove_neuron(3)
        else:
            net.apply_edits(npl.Edits().remove_neuron(3))
        r = e.add_neuron(bias=-0.8)  # no inputs: a constant, folded into the output's bias
        e.add_edge(r, 2, 1.5).remove_dead()
        net.apply_edits(e)
        assert int(r) == 3 and net.n_hidden == 2
        shift = net(x) - reference(x)
        torch.testing.assert_close(shift, torch.full_like(shift, 1.5 * math.tanh(-0.8)))


def test_a_batch_member_gives_a_neuron_in_a_refilled_slot_the_new_activation():
    net = npl.GraphNet.mlp(2, [3], 1, seed=0).set_activations(3, "relu")
    for activation, expected in ((None, "tanh"), ("sigmoid", "sigmoid")):
        pop = npl.GraphBatch.from_nets([net, net])
        e = npl.Edits().remove_neuron(3)
        r = e.add_neuron((0, 2), weight_in=1.0, weight_out=1.0)
        pop.apply_edits(e, member=0, activation=activation)
        edited = pop.to_net(0)
        assert int(r) == 3 and edited.neuron_activations()[3] == expected
        x = torch.randn(5, 2)
        torch.testing.assert_close(pop(x)[0], edited(x))


def test_from_nets_and_back_is_exact_when_every_hidden_neuron_has_another_activation():
    net = npl.GraphNet.mlp(2, [3], 1, activation="tanh", seed=0)
    net.set_activations(net.hidden_ids(), "relu")
    back = npl.GraphBatch.from_nets([net]).to_net(0)
    assert back.activation == "tanh" and back.neuron_activations() == net.neuron_activations()
    npl.GraphNet.mlp(2, [3], 1, activation="tanh").load_state_dict(back.state_dict())  # same settings


def test_neuron_ids_that_are_not_integers_and_activations_that_are_not_names_are_refused():
    net = two_hidden()
    for ids, message in ((torch.tensor([False, False, False, True, True]), "integers, not torch.bool"),
                         (3.7, "ints, not 3.7"), (torch.tensor([3.7]), "integers, not torch.float32"),
                         ("3", "ints"), (None, "ints")):
        with pytest.raises(npl.ConfigError, match=message):
            net.set_activations(ids, "relu")
    for activation in (None, 2):
        with pytest.raises(npl.ConfigError, match="a name or a list of names"):
            net.set_activations(3, activation)
    assert not net.mixed_activations


def test_state_dict_codes_of_the_wrong_shape_or_type_are_refused():
    state = two_hidden().set_activations(3, "relu").state_dict()
    codes = state["neuron_activation"]
    for bad in (codes[None], codes.tolist(), codes.float() + 0.5, codes.bool()):
        with pytest.raises(npl.CheckpointError, match="neuron_activation must be a 1-D tensor"):
            npl.GraphNet(2, 1, activation="tanh", output_activation="sigmoid").load_state_dict(
                {**state, "neuron_activation": bad})


def test_a_checkpoint_with_activation_codes_out_of_range_is_refused(tmp_path, monkeypatch):
    from neuroplastic.core import checkpoint
    net = two_hidden().set_activations(3, "relu")
    honest = checkpoint._live_slots

    def wrapping_code(n):  # 256 would wrap to 0 (tanh) in int8
        live = honest(n)
        live["activation"] = live["activation"].to(torch.int32).index_fill(0, torch.tensor([1]), 256)
        return live
    monkeypatch.setattr(checkpoint, "_live_slots", wrapping_code)
    npl.save(tmp_path / "net.ckpt", net)
    with pytest.raises(npl.CheckpointError, match="per-neuron activations"):
        npl.load(tmp_path / "net.ckpt")
