"""Plain PyTorch tooling on grown nets, and defects an outside review found in the core."""
import io

import pytest
import torch

import neuroplastic as npl
from conftest import trained


def grown(seed=0):
    net = npl.GraphNet.mlp(3, [4], 2, seed=seed)
    e = npl.Edits()
    for _ in range(30):  # beyond the initial capacity: the storage reallocates
        e.add_neuron(between=(0, 3), weight_out=0.1)
    e.remove_edges([1], [5])
    net.apply_edits(e)
    return net


def test_a_grown_nets_state_dict_loads_into_a_freshly_built_net():
    net = grown().track_edge_owners()
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)          # the usual way of saving a model
    fresh = npl.GraphNet.mlp(3, [4], 2, seed=1)   # built as the run began, before it grew
    assert fresh.edge_capacity != net.edge_capacity
    fresh.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    x = torch.randn(6, 3)
    assert torch.equal(fresh(x), net(x))
    assert (fresh.n_hidden, fresh.n_edges, fresh.capacity, fresh.edge_capacity) == \
        (net.n_hidden, net.n_edges, net.capacity, net.edge_capacity)
    assert fresh.next_uid == net.next_uid
    e = npl.Edits()  # and it keeps editing, with the same slots as the original would use
    h = e.add_neuron(between=(2, 4))
    fresh.apply_edits(e)
    e2 = npl.Edits()
    h2 = e2.add_neuron(between=(2, 4))
    net.apply_edits(e2)
    assert int(h) == int(h2) and torch.equal(fresh.edge_src, net.edge_src)


def test_a_urn_state_dict_carries_its_positions():
    positions = torch.rand(4, 2).numpy()
    urn = npl.URN(4, 2, size=20, steps=2, positions=positions, c_local=0.1)
    state = urn.state_dict()
    other = npl.URN(4, 2, size=20, steps=2, positions=torch.zeros(4, 2).numpy(), c_local=0.1)
    other.load_state_dict(state)
    assert torch.equal(other.edge_distance, urn.edge_distance)


def test_growing_between_backward_and_step_keeps_both_gradients():
    net = npl.GraphNet(3, 2, seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.randn(4, 3)).pow(2).sum().backward()
    weight_grad, bias_grad = net.weight.grad.clone(), net.bias.grad.clone()
    e = npl.Edits()
    for _ in range(20):
        e.add_neuron(between=(0, 3))
    net.apply_edits(e, optimizer=opt)
    assert net.bias.requires_grad and net.weight.requires_grad
    assert torch.equal(net.bias.grad[: len(bias_grad)], bias_grad)
    assert torch.equal(net.weight.grad[: len(weight_grad)], weight_grad)
    before = net.bias.detach().clone()
    opt.step()
    assert not torch.equal(net.bias.detach()[:5], before[:5])  # the pending bias gradient is applied


def test_levels_of_a_recurrent_net_are_levels_not_positions():
    net = npl.GraphNet.from_edges(2, 1, 2, [0, 3, 4, 1], [3, 4, 2, 4], mode="recurrent", steps=3)
    # ids 0,1 inputs; 2 output; 3,4 hidden; paths 0 -> 3 -> 4 -> 2 and 1 -> 4
    assert net.levels()[:5].tolist() == [0, 0, 3, 1, 2]
    cyclic = npl.GraphNet.dense_recurrent(2, 1, 2, steps=2)
    with pytest.raises(npl.CycleError):
        cyclic.levels()


def test_proximal_step_thresholds_under_any_optimizer():
    for make in (lambda p: torch.optim.SGD(p, lr=0.1), lambda p: torch.optim.RMSprop(p, lr=0.1)):
        urn = npl.URN(3, 2, size=12, steps=2, c_weight=0.5)
        opt = make(urn.parameters())
        trained(urn, steps=1)
        before = urn.weight.detach().abs().clone()
        urn.proximal_step(opt)
        after = urn.weight.detach().abs()
        live = urn.edge_alive
        # soft threshold by lr * c = 0.05: every weight shrinks by it or reaches zero
        torch.testing.assert_close(after[live], (before[live] - 0.05).clamp(min=0))
    other = torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
    with pytest.raises(npl.ConfigError, match="does not hold this URN's weight"):
        npl.URN(3, 2, size=12, steps=2, c_weight=0.5).proximal_step(other)


def test_export_runs_the_same_executor_as_the_net():
    net = grown()
    module = net.to_module()
    code = module.code
    assert "neuroplastic" not in code
    x = torch.randn(5, 3)
    torch.testing.assert_close(module(x), net(x))
    rec = npl.GraphNet.dense_recurrent(2, 1, 3, steps=3, seed=0)
    x2 = torch.randn(4, 2)
    torch.testing.assert_close(rec.to_module()(x2), rec(x2))


def test_big_layered_net_plan_keeps_no_per_edge_index():
    net = npl.GraphNet.mlp(64, [128, 64], 10, seed=0)
    plan = net.plan()
    assert all(lv.weight_slice and lv.eids is None and lv.flat is None for lv in plan.levels)
    assert plan.eids is None
    assert net.edge_src.dtype == net.edge_dst.dtype == torch.int32
    assert net.edge_uid.numel() == 0  # owner ids only once a rule asks for them
    assert net.track_edge_owners().edge_uid.dtype == torch.int32 and net.edge_uid.numel() == net.edge_capacity


def test_a_state_dict_of_another_kind_of_net_is_refused_before_anything_changes():
    source = npl.GraphNet.mlp(4, [16], 2, seed=0)
    target = npl.GraphNet.mlp(3, [16], 2, seed=0)
    before = target.weight.detach().clone()
    with pytest.raises(npl.CheckpointError, match="n_in=4"):
        target.load_state_dict(source.state_dict())
    assert torch.equal(target.weight.detach(), before)
    state = source.state_dict()
    state["weight"] = state["weight"].clone()
    state["weight"][0] = float("nan")
    with pytest.raises(npl.CheckpointError, match="not finite"):
        npl.GraphNet.mlp(4, [16], 2).load_state_dict(state)
    state = source.state_dict()
    state["edge_dst"] = state["edge_dst"].clone()
    state["edge_dst"][0] = 999
    with pytest.raises(npl.CheckpointError, match="do not exist"):
        npl.GraphNet.mlp(4, [16], 2).load_state_dict(state)


def test_a_state_dict_with_a_repeated_edge_or_an_impossible_source_is_refused():
    source = npl.GraphNet.mlp(4, [16], 2, seed=0)
    state = source.state_dict()
    live = (state["edge_src"] >= 0).nonzero().squeeze(1)
    a, b = int(live[0]), int(live[1])
    state["edge_src"], state["edge_dst"] = state["edge_src"].clone(), state["edge_dst"].clone()
    state["edge_src"][b], state["edge_dst"][b] = state["edge_src"][a], state["edge_dst"][a]
    with pytest.raises(npl.CheckpointError, match="two edges between the same pair"):
        npl.GraphNet.mlp(4, [16], 2).load_state_dict(state)
    state = source.state_dict()
    state["edge_src"] = state["edge_src"].clone()
    state["edge_src"][a] = -5  # not the free-slot mark: loading it as free would lose the edge unseen
    with pytest.raises(npl.CheckpointError, match="below -1"):
        npl.GraphNet.mlp(4, [16], 2).load_state_dict(state)
    npl.GraphNet.mlp(4, [16], 2).load_state_dict(source.state_dict())  # the untouched one loads


def test_a_rules_returned_edits_are_applied_by_the_trainer_when_it_did_not_apply_them():
    class GrowOnce(npl.rules.Rule):
        def __init__(self):
            self.ref = None

        def step(self, net, optimizer=None):
            e = npl.Edits()
            if self.ref is None:
                self.ref = e.add_neuron(between=(0, 3))
            return e

    net = npl.GraphNet.mlp(3, [4], 2, seed=0)
    rule = GrowOnce()
    npl.train_supervised(net, torch.randn(64, 3).numpy(), torch.randint(0, 2, (64,)).numpy(), rule=rule, epochs=1)
    assert net.n_hidden == 5 and net.neuron_alive[int(rule.ref)]


@pytest.mark.parametrize("build, message", [
    (lambda e, h: e.add_edges([0, 1], [h, h]), "no NeuronRefs"),
    (lambda e, h: e.add_edges(torch.tensor([[0]]), torch.tensor([[2]])), "1-D"),
    (lambda e, h: e.add_edges([0], [2], torch.tensor([1 + 1j])), "real numbers"),
    (lambda e, h: e.add_neuron(between=(0, 2), weight_out=True), "not a real number"),
])
def test_array_ops_refuse_what_they_cannot_take_when_recorded(build, message):
    e = npl.Edits()
    h = e.add_neuron()
    with pytest.raises(npl.EditError, match=message):
        build(e, h)
    assert npl.Edits().remove_edges(torch.tensor([]), torch.tensor([])).counts() == {}  # empty is no op


def test_bad_constructor_and_trainer_inputs_are_one_clear_error():
    with pytest.raises(npl.ConfigError, match="device='bogus'"):
        npl.GraphNet.mlp(2, [3], 1, device="bogus")
    with pytest.raises(npl.ConfigError, match="floating-point"):
        npl.GraphNet.mlp(2, [3], 1, dtype=torch.int64)
    with pytest.raises(npl.EditError, match="add_neurons"):
        npl.Edits.from_tensors(add_neurons=-1)
    net = npl.GraphNet.mlp(4, [3], 2)
    x = torch.randn(10, 4).numpy()
    with pytest.raises(npl.ConfigError, match="class ids must lie in 0..1"):
        npl.train_supervised(net, x, torch.full((10,), 5).numpy())
    with pytest.raises(npl.ConfigError, match="rule protocol"):
        npl.train_supervised(net, x, torch.zeros(10, dtype=torch.long).numpy(), rule="hebbian")
    stale = torch.optim.Adam(npl.GraphNet.mlp(4, [3], 2).parameters())
    with pytest.raises(npl.EditError, match="holds none"):
        net.apply_edits(npl.Edits().add_edge(0, 4), optimizer=stale)


def test_a_csr_kernel_net_runs_a_level_that_has_no_edges():
    # an unconnected hidden neuron is a level of its bias alone (it used to be an IndexError)
    net = npl.GraphNet(2, 1, kernel="csr", connect="none")
    edits = npl.Edits()
    edits.add_neuron()
    net.apply_edits(edits)
    assert net(torch.randn(3, 2)).tolist() == [[0.0]] * 3
    assert npl.GraphNet.from_edges(2, 1, 1, [0, 3], [3, 2], kernel="csr").n_edges == 2
