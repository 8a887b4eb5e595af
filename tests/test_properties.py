"""Property tests over random edit sequences in both modes, mixing single and array edits,
packing, checkpoints and storage growth with gradients pending.

`HYPOTHESIS_PROFILE=thorough python3 -m pytest tests/test_properties.py` runs 1,000 examples
a property (CI keeps the fast default, see conftest.py)."""
import copy

import torch
from hypothesis import given
from hypothesis import strategies as st

import neuroplastic as npl
from conftest import check_invariants, trained

OPS = ["relay", "neuron", "edge", "edges", "remove_edge", "remove_edges", "remove_neuron", "dead",
       "set_weights", "pack", "save_load", "grow_pending"]


def pairs(net):
    src, dst, _ = net.edges()
    return set(zip(src.tolist(), dst.tolist()))


def check(net):
    """Invariants every sequence of edits keeps, and the export still computes the net."""
    check_invariants(net)
    x = torch.randn(3, net.n_in, dtype=net.weight.dtype)
    torch.testing.assert_close(net.to_module()(x), net(x))


def random_edits(data, net):
    e = npl.Edits()
    live = sorted(pairs(net))
    hidden = net.hidden_ids().tolist()
    n_in, n_fixed = net.n_in, net.n_in + net.n_out
    sources = list(range(n_in)) + hidden if net.mode == "dag" else list(range(n_fixed)) + hidden
    targets = list(range(n_in, n_fixed)) + hidden if net.mode == "dag" else list(range(n_fixed)) + hidden
    op = data.draw(st.sampled_from(OPS[:9]))
    if op == "relay" and live:
        e.add_neuron(between=data.draw(st.sampled_from(live)), weight_out=data.draw(st.floats(-1, 1)))
    elif op == "neuron":
        h = e.add_neuron(bias=data.draw(st.floats(-1, 1)))
        e.add_edge(data.draw(st.sampled_from(list(range(n_in)))), h, weight=0.5)
    elif op in ("edge", "edges"):
        k = 1 if op == "edge" else data.draw(st.integers(1, 6))
        new = {(data.draw(st.sampled_from(sources)), data.draw(st.sampled_from(targets))) for _ in range(k)}
        new = sorted(new - set(live))
        if op == "edge" and new:
            e.add_edge(*new[0], weight=0.3)
        elif new:
            s, d = zip(*new)
            e.add_edges(torch.tensor(s), torch.tensor(d), data.draw(st.floats(-1, 1)))
    elif op == "remove_edge" and live:
        e.remove_edge(*data.draw(st.sampled_from(live)))
    elif op == "remove_edges" and live:
        chosen = sorted(set(data.draw(st.lists(st.sampled_from(live), min_size=1, max_size=8))))
        s, d = zip(*chosen)
        e.remove_edges(torch.tensor(s), torch.tensor(d))
    elif op == "remove_neuron" and hidden:
        e.remove_neuron(data.draw(st.sampled_from(hidden)))
    elif op == "set_weights" and live:
        s, d = zip(*live)
        e.set_weights(torch.tensor(s), torch.tensor(d), torch.randn(len(s)))
    else:
        e.remove_dead()
    return e


def net_for(mode: str, seed: int):
    if mode == "dag":
        return npl.GraphNet.mlp(3, [4], 2, seed=seed)
    return npl.GraphNet.from_edges(3, 2, 3, [0, 1, 5, 6, 7, 6], [5, 6, 7, 3, 4, 6], mode="recurrent",
                                   steps=3, seed=seed)


@given(st.data(), st.sampled_from(["dag", "recurrent"]), st.integers(0, 3))
def test_mixed_edit_sequences_keep_invariants_and_match_a_rebuilt_index(data, mode, seed):
    net = net_for(mode, seed)
    opt = trained(net)
    twin = copy.deepcopy(net)  # the same edits, its index rebuilt before every batch (as after load)
    twin_opt = torch.optim.Adam(twin.parameters(), lr=1e-2)
    twin_opt.load_state_dict(opt.state_dict())
    for _ in range(data.draw(st.integers(1, 6))):
        what = data.draw(st.sampled_from(["edits", "edits", "edits", "pack", "save_load", "grow_pending"]))
        if what == "pack":
            net.pack_edges(opt)
            twin.pack_edges(twin_opt)
        elif what == "save_load":  # a checkpoint round trip, then the same training continues
            buffer = copy.deepcopy(net.state_dict())
            fresh = net_for(mode, 99)
            fresh.load_state_dict(buffer)
            x = torch.randn(4, 3)
            torch.testing.assert_close(fresh(x), net(x))
            assert pairs(fresh) == pairs(net)
        elif what == "grow_pending":  # grow the storage while gradients are pending
            for model, optimizer in ((net, opt), (twin, twin_opt)):
                model(torch.ones(2, 3)).sum().backward()
                grow = npl.Edits()
                for _ in range(20):
                    grow.add_neuron()
                model.apply_edits(grow, optimizer=optimizer)
                assert model.bias.grad is not None and model.weight.grad is not None
                optimizer.step()
                optimizer.zero_grad()
        else:
            e = random_edits(data, net)
            twin_e = copy.deepcopy(e)
            before = pairs(net)
            try:
                net.apply_edits(e, optimizer=opt)
            except npl.EditError:
                assert pairs(net) == before  # all-or-nothing
            twin.edit_index = None
            try:
                twin.apply_edits(twin_e, optimizer=twin_opt)
            except npl.EditError:
                pass
        check(net)
        for name in ("edge_alive", "edge_src", "edge_dst", "neuron_alive"):
            a, b = getattr(net, name), getattr(twin, name)
            n = min(len(a), len(b))
            assert torch.equal(a[:n], b[:n]) and not a[n:].any() and not b[n:].any(), name
        trained(net, steps=1)
        opt = trained(net, steps=1)
        twin_opt = torch.optim.Adam(twin.parameters(), lr=1e-2)
        twin_opt.load_state_dict(opt.state_dict())
        with torch.no_grad():
            twin.weight.copy_(net.weight) if twin.weight.shape == net.weight.shape else None
            twin.bias.copy_(net.bias) if twin.bias.shape == net.bias.shape else None


@given(st.data(), st.sampled_from(["dag", "recurrent"]))
def test_function_preserving_edits_preserve_the_function_in_both_modes(data, mode):
    net = net_for(mode, data.draw(st.integers(0, 3)))
    x = torch.randn(5, 3)
    for _ in range(data.draw(st.integers(1, 4))):
        y = net(x).detach()
        live = sorted(pairs(net))
        e = npl.Edits()
        kind = data.draw(st.sampled_from(["relay", "zero_edges", "drop_zero"]))
        if kind == "relay" and live and mode == "dag":
            e.add_neuron(between=data.draw(st.sampled_from(live)), weight_out=0.0)
        elif kind == "zero_edges":
            hidden = net.hidden_ids().tolist()
            src = torch.tensor([data.draw(st.sampled_from(list(range(3)) + hidden)) for _ in range(3)])
            dst = torch.tensor([data.draw(st.sampled_from([3, 4] + hidden)) for _ in range(3)])
            new = sorted(set(zip(src.tolist(), dst.tolist())) - set(live))
            if new:
                s, d = zip(*new)
                e.add_edges(torch.tensor(s), torch.tensor(d), 0.0)
        elif kind == "drop_zero" and live:
            chosen = sorted(set(data.draw(st.lists(st.sampled_from(live), min_size=1, max_size=4))))
            s, d = (torch.tensor(v) for v in zip(*chosen))
            net.apply_edits(npl.Edits().set_weights(s, d, 0.0))  # zero first: then removing them
            y = net(x).detach()                                   # must change nothing
            e.remove_edges(s, d)
        try:
            net.apply_edits(e)
        except npl.CycleError:
            continue
        torch.testing.assert_close(net(x), y, atol=1e-5, rtol=1e-5)
