import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neuroplastic as npl
from conftest import check_invariants, trained

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # examples: the profile


def live_pairs(net):
    src, dst, _ = net.edges()
    return list(zip(src.tolist(), dst.tolist()))


def state_snapshot(opt, net):
    """Per-slot optimizer moments of live weights and biases, keyed by (kind, uid)."""
    snap = {}
    net.track_edge_owners()
    for kind, param, alive, uid in (("w", net.weight, net.edge_alive, net.edge_uid),
                                    ("b", net.bias, net.neuron_alive, net.neuron_uid)):
        state = opt.state[param]
        for slot in alive.nonzero().squeeze(1).tolist():
            snap[(kind, int(uid[slot]))] = tuple(float(v[slot]) for k, v in sorted(state.items()) if v.dim())
    return snap


@st.composite
def preserving_ops(draw, net):
    """A batch of function-preserving edits valid for `net`."""
    e = npl.Edits()
    n_fixed = net.n_in + net.n_out
    dropped = set()
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["relay", "zero_edge", "drop_zero", "dead"]))
        pairs = [p for p in live_pairs(net) if p not in dropped]
        hidden = net.hidden_ids().tolist()
        if kind == "relay" and pairs:
            s, d = draw(st.sampled_from(pairs))
            e.add_neuron(between=(s, d), weight_in=draw(st.floats(-2, 2)), weight_out=0.0)
        elif kind == "zero_edge":
            h = e.add_neuron(bias=draw(st.floats(-1, 1)))
            e.add_edge(draw(st.integers(0, net.n_in - 1)), h, weight=draw(st.floats(-1, 1)))
            e.add_edge(h, draw(st.sampled_from(hidden + list(range(net.n_in, n_fixed)))), weight=0.0)
        elif kind == "drop_zero" and pairs:
            s, d = draw(st.sampled_from(pairs))
            with torch.no_grad():  # make it zero first, then removing it must change nothing
                slot = net.edit_index.slot_of(s, d) if net.edit_index else None
                if slot is None:
                    slot = int(((net.edge_src == s) & (net.edge_dst == d) & net.edge_alive).nonzero()[0])
                net.weight[slot] = 0
            e.remove_edge(s, d)
            dropped.add((s, d))
        elif kind == "dead":  # last: it may remove neurons that later ops would name
            e.remove_dead()
            break
    return e


@SETTINGS
@given(st.data(), st.sampled_from(["adam", "adamw", "sgd"]))
def test_random_preserving_edit_sequences(data, optimizer):
    net = npl.GraphNet.mlp(3, [4, 3], 2, seed=data.draw(st.integers(0, 5)))
    opt = trained(net, optimizer=optimizer)
    x = torch.randn(7, 3)
    for _ in range(data.draw(st.integers(1, 4))):
        edits = data.draw(preserving_ops(net))
        before = net(x).detach()
        moments = state_snapshot(opt, net)
        net.apply_edits(edits, optimizer=opt)
        assert torch.allclose(net(x), before, atol=1e-5)
        check_invariants(net)
        after = state_snapshot(opt, net)
        for key, value in after.items():
            if key in moments:  # a survivor: untouched
                assert value == moments[key]
            else:  # born in this batch: fresh state
                assert all(v == 0 for v in value)
        trained(net, steps=1, optimizer=optimizer)  # and it keeps training
        opt = trained(net, steps=2, optimizer=optimizer)


@SETTINGS
@given(st.data())
def test_random_edit_sequences_keep_invariants(data):
    net = npl.GraphNet(3, 2, seed=0)
    opt = trained(net)
    twin = copy.deepcopy(net)  # gets the same edits, but rebuilds its index before each batch
    for _ in range(data.draw(st.integers(1, 8))):
        e = npl.Edits()
        hidden = net.hidden_ids().tolist()
        pairs = live_pairs(net)
        op = data.draw(st.sampled_from(["add_neuron", "relay", "edge", "remove_edge", "remove_neuron", "dead"]))
        if op == "add_neuron":
            e.add_neuron()
        elif op == "relay" and pairs:
            e.add_neuron(between=data.draw(st.sampled_from(pairs)), weight_out=0.3)
        elif op == "edge":
            s = data.draw(st.sampled_from(list(range(3)) + hidden))
            d = data.draw(st.sampled_from([3, 4] + hidden))
            e.add_edge(s, d, weight=0.5)
        elif op == "remove_edge" and pairs:
            e.remove_edge(*data.draw(st.sampled_from(pairs)))
        elif op == "remove_neuron" and hidden:
            e.remove_neuron(data.draw(st.sampled_from(hidden)))
        else:
            e.remove_dead()
        before_pairs = set(live_pairs(net))
        twin_edits = copy.deepcopy(e)
        try:
            net.apply_edits(e, optimizer=opt)
        except npl.EditError:
            assert set(live_pairs(net)) == before_pairs  # all-or-nothing
        check_invariants(net)
        # as after npl.load: the rebuilt index must place every edge and neuron in the same slot
        # as the running one, or a resumed run would diverge from an uninterrupted one
        twin.edit_index = None
        try:
            twin.apply_edits(twin_edits)
        except npl.EditError:
            pass
        for name in ("edge_alive", "edge_src", "edge_dst", "neuron_alive"):
            a, b = getattr(net, name), getattr(twin, name)
            n = min(len(a), len(b))
            assert torch.equal(a[:n], b[:n]) and not a[n:].any() and not b[n:].any(), name
        trained(net, steps=1)


def test_public_api_example_from_design():
    net = npl.GraphNet(n_in=4, n_out=2, activation="tanh", seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(3, 4)
    y = net(x).detach()
    e = npl.Edits()
    h = e.add_neuron(between=(0, 4))
    h2 = e.add_neuron()
    e.add_edge(h2, h, weight=0.0)
    net.apply_edits(e, optimizer=opt)
    assert int(h) >= 6 and int(h2) >= 6 and int(h) != int(h2)
    assert torch.allclose(net(x), y)
    assert net.n_hidden == 2 and net.n_edges == 8 + 3


def test_cycle_is_refused_with_a_clear_error_and_nothing_changes():
    net = npl.GraphNet(2, 1, seed=0)
    e = npl.Edits()
    a, b = e.add_neuron(between=(0, 2)), e.add_neuron()
    e.add_edge(a, b)
    net.apply_edits(e)
    n_edges = net.n_edges
    bad = npl.Edits().add_edge(1, int(a)).add_edge(int(b), int(a))  # b -> a closes a -> b -> a
    with pytest.raises(npl.CycleError, match="cycle"):
        net.apply_edits(bad)
    assert net.n_edges == n_edges
    with pytest.raises(npl.CycleError):
        net.apply_edits(npl.Edits().add_edge(int(a), int(a)))


@pytest.mark.parametrize("build, message", [
    (lambda e: e.add_edge(0, 99), "dst=99 names no live neuron"),
    (lambda e: e.remove_edge(0, 1), "does not exist"),
    (lambda e: e.remove_neuron(0), "only hidden neurons"),
    (lambda e: e.remove_neuron(57), "neuron=57"),
    (lambda e: e.add_edge(0, 2).add_edge(0, 2), "already exists"),
    (lambda e: e.add_edge(2, 3), "output neurons have no outgoing edges"),
    (lambda e: e.add_edge("a", 2), "not a neuron index"),
    (lambda e: e.add_edge(True, 2), "is a bool"),
    (lambda e: e.add_edge(0, 2, "abc"), "weight='abc' is not a number"),
    (lambda e: e.add_edge(0, 2, float("inf")), "weight=inf is not finite"),
    (lambda e: e.add_neuron(bias=float("nan")), "bias=nan is not finite"),
    (lambda e: e.add_neuron(between=5), "between=5 must be a pair"),
])
def test_bad_edits_raise_edit_error(build, message):
    net = npl.GraphNet(2, 2, connect="none")
    with pytest.raises(npl.EditError, match=message):
        net.apply_edits(build(npl.Edits()))
    assert net.n_edges == 0 and net.n_hidden == 0


def test_reference_cannot_be_read_before_apply_and_edits_apply_once():
    e = npl.Edits()
    h = e.add_neuron()
    with pytest.raises(npl.EditError):
        int(h)
    net = npl.GraphNet(2, 1)
    net.apply_edits(e)
    with pytest.raises(npl.EditError, match="already applied"):
        net.apply_edits(e)


def test_remove_dead_folds_constant_sources_into_biases():
    net = npl.GraphNet(2, 1, seed=0)
    e = npl.Edits()
    h = e.add_neuron(bias=0.7)        # no inputs: outputs tanh(0.7) forever
    e.add_edge(h, 2, weight=1.5)
    net.apply_edits(e)
    x = torch.randn(4, 2)
    y = net(x).detach()
    net.apply_edits(npl.Edits().remove_dead())
    assert net.n_hidden == 0
    assert torch.allclose(net(x), y, atol=1e-6)


def test_removed_slot_reused_gets_fresh_state():
    net = npl.GraphNet(2, 1, seed=0)
    opt = trained(net)
    e = npl.Edits()
    h = e.add_neuron(between=(0, 2), weight_out=0.5)
    net.apply_edits(e, optimizer=opt)
    opt = trained(net)
    slot = int(((net.edge_src == int(h)) & net.edge_alive).nonzero()[0])
    assert opt.state[net.weight]["exp_avg"][slot] != 0
    net.apply_edits(npl.Edits().remove_neuron(int(h)), optimizer=opt)
    assert opt.state[net.weight]["exp_avg"][slot] == 0
    e = npl.Edits()
    h2 = e.add_neuron(between=(1, 2))
    net.apply_edits(e, optimizer=opt)
    assert int(h2) == int(h)  # the freed id is reused ...
    for key in ("exp_avg", "exp_avg_sq"):  # ... with zero moments everywhere it touches
        assert torch.all(opt.state[net.weight][key][~net.edge_alive] == 0)


@pytest.mark.parametrize("make, key, initial", [
    (lambda p: torch.optim.Rprop(p, lr=1e-2), "step_size", 1e-2),
    (lambda p: torch.optim.Adagrad(p, lr=1e-2, initial_accumulator_value=0.1), "sum", 0.1),
])
def test_new_slots_start_from_the_optimizers_own_initial_state(make, key, initial):
    # Rprop's step size must start at lr, not 0, or a new edge never moves
    net = npl.GraphNet(3, 2, seed=0)
    opt = make(net.parameters())
    x, y = torch.randn(16, 3), torch.randn(16, 2)

    def step():
        opt.zero_grad()
        (net(x) - y).pow(2).mean().backward()
        opt.step()

    for _ in range(3):
        step()
    old_edges = net.edge_capacity
    e = npl.Edits()
    relays = [e.add_neuron(between=(s, d), weight_out=0.0) for s in range(3) for d in (3, 4) for _ in range(2)]
    net.apply_edits(e, optimizer=opt)
    assert net.edge_capacity > old_edges  # the new edges needed a reallocation
    new = torch.isin(net.edge_src, torch.tensor([int(r) for r in relays])) | \
        torch.isin(net.edge_dst, torch.tensor([int(r) for r in relays]))
    new &= net.edge_alive
    assert new.sum() == 24 and torch.all(opt.state[net.weight][key][new] == initial)
    assert torch.all(opt.state[net.bias][key][[int(r) for r in relays]] == initial)
    for _ in range(5):
        step()
    assert torch.all(net.weight.detach()[new] != 0)  # the new edges learn


def test_a_bad_optimizer_argument_is_refused_before_anything_changes():
    net = npl.GraphNet.mlp(2, [3], 1, seed=0)
    before = live_pairs(net)
    e = npl.Edits()
    e.remove_edge(0, 2)
    e.add_neuron(between=(1, 2))
    for bad in ("adam", [torch.optim.SGD(net.parameters(), lr=0.1), 3]):
        with pytest.raises(npl.EditError, match="is not a torch.optim.Optimizer"):
            net.apply_edits(e, optimizer=bad)
        assert live_pairs(net) == before


def test_growing_without_the_optimizer_warns_that_it_no_longer_trains_the_net():
    import warnings
    net = npl.GraphNet(3, 2, seed=0)
    opt = trained(net)

    def grow():
        e = npl.Edits()
        for _ in range(20):
            e.add_neuron(between=(0, 3))
        return e

    with pytest.warns(UserWarning, match="pass it as apply_edits"):
        net.apply_edits(grow())
    # that optimizer now holds the old Parameters only: passing it is refused, not ignored
    with pytest.raises(npl.EditError, match="holds none of this network's Parameters"):
        net.apply_edits(grow(), optimizer=opt)
    opt = trained(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.apply_edits(grow(), optimizer=opt)  # passed: its state follows, nothing to warn about
