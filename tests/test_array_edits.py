"""Edits in array form: add_edges / remove_edges / set_weights, checked and applied with tensor ops."""
import pytest
import torch

import neuroplastic as npl
from conftest import trained
from neuroplastic.core.edits import EditIndex


def pairs_and_slots(net):
    src, dst, _ = net.edges()
    slots = net.edge_alive.nonzero().squeeze(1)
    return dict(zip(zip(src.tolist(), dst.tolist()), slots.tolist()))


def test_array_ops_land_where_the_same_single_ops_do():
    a, b = (npl.GraphNet.mlp(3, [4], 2, seed=0).track_edge_owners() for _ in range(2))
    src, dst = torch.tensor([0, 1, 2, 0]), torch.tensor([3, 3, 4, 4])   # inputs -> outputs
    removed_src, removed_dst = torch.tensor([0, 1, 5]), torch.tensor([5, 6, 3])
    single = npl.Edits()
    for s, d in zip(removed_src.tolist(), removed_dst.tolist()):
        single.remove_edge(s, d)
    for s, d in zip(src.tolist(), dst.tolist()):
        single.add_edge(s, d, weight=0.25)
    arrays = npl.Edits().remove_edges(removed_src, removed_dst).add_edges(src, dst, 0.25)
    a.apply_edits(single)
    b.apply_edits(arrays)
    assert pairs_and_slots(a) == pairs_and_slots(b)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.edge_uid, b.edge_uid)
    x = torch.randn(5, 3)
    assert torch.equal(a(x), b(x))
    assert arrays.counts() == {"remove_edge": 3, "add_edge": 4}


def test_removing_most_edges_in_one_call_equals_the_masked_dense_net():
    net = npl.GraphNet.mlp(6, [20, 10], 3, seed=0)
    opt = trained(net)
    src, dst, w = net.edges()
    keep = torch.rand(len(src), generator=torch.Generator().manual_seed(0)) > 0.9
    masked = npl.GraphNet.mlp(6, [20, 10], 3, seed=0)
    with torch.no_grad():
        masked.weight.copy_(net.weight)
        masked.bias.copy_(net.bias)
        masked.weight[net.edge_alive.nonzero().squeeze(1)[~keep]] = 0
    x = torch.randn(9, 6)
    expected = masked(x)
    net.apply_edits(npl.Edits().remove_edges(src[~keep], dst[~keep]), optimizer=opt)
    assert net.n_edges == int(keep.sum())
    torch.testing.assert_close(net(x), expected)
    assert torch.all(opt.state[net.weight]["exp_avg"][~net.edge_alive] == 0)


def test_set_weights_rewinds_values_and_keeps_structure_and_optimizer_state():
    net = npl.GraphNet.mlp(4, [8], 2, seed=0)
    initial = net.edges()[2].clone()
    opt = trained(net, steps=5)
    moments = opt.state[net.weight]["exp_avg"].clone()
    plan = net.plan()
    src, dst, _ = net.edges()
    net.apply_edits(npl.Edits().set_weights(src, dst, initial), optimizer=opt)
    assert torch.equal(net.edges()[2], initial)
    assert torch.equal(opt.state[net.weight]["exp_avg"], moments)
    assert net.plan() is plan  # values only: the execution plan is kept


@pytest.mark.parametrize("build, error, message", [
    (lambda e: e.add_edges([0, 0], [3, 3]), npl.EditError, "listed twice"),
    (lambda e: e.add_edges([0], [5]), npl.EditError, "already exists"),
    (lambda e: e.add_edges([0], [99]), npl.EditError, "dst=99 names no live neuron"),
    (lambda e: e.add_edges([4], [5]), npl.EditError, "output neurons have no outgoing edges"),
    (lambda e: e.add_edges([5], [0]), npl.EditError, "input neurons take no incoming edges"),
    (lambda e: e.add_edges([5, 6], [6, 5]), npl.CycleError, "cycle"),
    (lambda e: e.remove_edges([0], [3]), npl.EditError, "edge 0 -> 3 does not exist"),
    (lambda e: e.remove_edges([0, 0], [5, 5]), npl.EditError, "twice"),
    (lambda e: e.set_weights([0], [3], 1.0), npl.EditError, "does not exist"),
    (lambda e: e.add_edges([0, 1], [3], 0.0), npl.EditError, "one per edge"),
    (lambda e: e.add_edges([0], [3], float("nan")), npl.EditError, "not finite"),
    (lambda e: e.add_edges([0.5], [3]), npl.EditError, "integer neuron ids"),
    (lambda e: e.set_weights([0, 1], [5, 5], [1.0, 2.0, 3.0]), npl.EditError, "3 values for 2 edges"),
])
def test_bad_array_edits_raise_and_change_nothing(build, error, message):
    net = npl.GraphNet.mlp(3, [2], 2, seed=0)   # inputs 0-2, outputs 3-4, hidden 5-6
    before = (pairs_and_slots(net), net.weight.detach().clone())
    with pytest.raises(error, match=message):
        net.apply_edits(build(npl.Edits()))
    assert pairs_and_slots(net) == before[0] and torch.equal(net.weight.detach(), before[1])


def test_array_and_single_ops_mix_in_one_batch_in_order():
    net = npl.GraphNet(3, 2, seed=0, connect="none")
    e = npl.Edits()
    h = e.add_neuron()
    e.add_edges([0, 1, 2], [3, 3, 4], [0.1, 0.2, 0.3])
    e.remove_edge(1, 3)                        # an edge the same batch added as an array
    e.add_edge(h, 4, weight=0.5)
    e.remove_edges([2], [4])
    e.add_edges([1], [4], 0.7)                 # reuses a slot freed in this batch
    e.set_weights([1], [4], 0.9)
    net.apply_edits(e)
    src, dst, w = net.edges()
    got = {(s, d): round(x, 4) for s, d, x in zip(src.tolist(), dst.tolist(), w.tolist())}
    assert got == {(0, 3): 0.1, (int(h), 4): 0.5, (1, 4): 0.9}
    assert net.n_edges == 3 and int(net.edge_alive.sum()) == 3
    assert set(net.edge_alive.nonzero().squeeze(1).tolist()) == {0, 1, 2}  # lowest slots first


def test_a_refused_array_batch_leaves_net_and_index_as_they_were():
    net = npl.GraphNet.mlp(3, [4], 2, seed=0)
    net.apply_edits(npl.Edits().remove_edges([0], [5]))
    before = pairs_and_slots(net)
    bad = npl.Edits().remove_edges([1], [5]).add_edges([0, 0], [5, 5])
    with pytest.raises(npl.EditError):
        net.apply_edits(bad)
    assert pairs_and_slots(net) == before
    net.apply_edits(npl.Edits().add_edge(0, 5, weight=1.0))  # the rebuilt index still works
    assert (0, 5) in pairs_and_slots(net)


@pytest.mark.parametrize("table", ["dense", "sorted"])
def test_both_edge_tables_answer_alike(table, monkeypatch):
    if table == "sorted":  # force the table big sparse graphs get
        monkeypatch.setattr(EditIndex, "DENSE_MIN_ENTRIES", 0)
        monkeypatch.setattr(EditIndex, "DENSE_PER_EDGE", 0)
    net = npl.GraphNet.mlp(4, [6, 5], 3, seed=0)
    index = EditIndex(net)
    assert type(index.edges).__name__ == {"dense": "DenseEdgeTable", "sorted": "SortedEdgeTable"}[table]
    src, dst, _ = net.edges()
    slots = net.edge_alive.nonzero().squeeze(1)
    assert torch.equal(index.slots_of(src.long(), dst.long()), slots)
    assert index.slots_of(torch.tensor([0]), torch.tensor([4])).tolist() == [-1]
    assert sorted(index.successors(7)) == list(range(13, 18))
    assert sorted(index.predecessors(7)) == [0, 1, 2, 3]
    # many single ops (beyond the sorted table's overlay) and then arrays again
    e = npl.Edits()
    for s, d in list(zip(src.tolist(), dst.tolist()))[:40]:
        e.remove_edge(s, d)
    net.edit_index = index
    net.apply_edits(e)
    net.apply_edits(npl.Edits().add_edges(src[:40], dst[:40], 0.0))
    assert pairs_and_slots(net) == dict(zip(zip(src.tolist(), dst.tolist()), slots.tolist()))


def test_remove_dead_after_array_pruning_keeps_the_function():
    net = npl.GraphNet.mlp(4, [6, 6], 2, seed=0)
    first_layer = (net.edge_dst[net.edge_alive] >= 6) & (net.edge_dst[net.edge_alive] < 12)
    src, dst, _ = net.edges()
    kill = first_layer & (dst == 6)            # neuron 6 loses every input: a constant source
    out_of_7 = src == 7                        # neuron 7 loses every output: dead
    e = npl.Edits().remove_edges(src[kill | out_of_7], dst[kill | out_of_7])
    net.apply_edits(e)
    x = torch.randn(5, 4)
    y = net(x).detach()
    net.apply_edits(npl.Edits().remove_dead())
    assert net.n_hidden == 10
    torch.testing.assert_close(net(x), y)


def test_remove_neurons_in_one_call_equals_removing_them_one_by_one():
    a, b = (npl.GraphNet.mlp(3, [5, 4], 2, seed=0) for _ in range(2))
    single = npl.Edits()
    for i in (5, 7, 11):
        single.remove_neuron(i)
    a.apply_edits(single)
    arrays = npl.Edits().remove_neurons(torch.tensor([5, 7, 11]))
    b.apply_edits(arrays)
    assert pairs_and_slots(a) == pairs_and_slots(b) and torch.equal(a.neuron_alive, b.neuron_alive)
    assert arrays.counts() == {"remove_neuron": 3}
    for bad, message in (([5], "names no live neuron"), ([3], "input or output"), ([6, 6], "twice")):
        with pytest.raises(npl.EditError, match=message):
            b.apply_edits(npl.Edits().remove_neurons(bad))


def test_edits_from_tensors_a_network_produced():
    net = npl.GraphNet(2, 1, seed=0)
    commands = torch.tensor([[0.0, 0.9], [1.0, 0.7]])  # e.g. a controller's rows: (source, strength)
    src, dst = commands[:, 0].long(), torch.full((2,), 2)
    e = npl.Edits.from_tensors(remove=(src, dst), add_neurons=1)
    net.apply_edits(e)
    assert net.n_edges == 0 and net.n_hidden == 1 and int(e.new_neurons[0]) == 3
