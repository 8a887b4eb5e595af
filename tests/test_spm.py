import pytest
import torch

import neuroplastic as npl
from neuroplastic.rules import SPM, SPMConfig


def drive(net, spm, updates, steps):
    """Apply a scripted weight update per step (as an optimizer would) and observe it."""
    for t in range(steps):
        with torch.no_grad():
            net.weight += updates(t)
        spm.observe(net)


def test_oscillating_edge_gets_a_relay_and_stable_small_edge_is_pruned():
    net = npl.GraphNet(2, 1, seed=0)  # edges 0->2 and 1->2
    with torch.no_grad():
        net.weight[1] = 0.001  # edge 1 -> 2: tiny and still
    spm = SPM(window=20, interval=20, warmup=20, min_age=20, p_rand=0.0, eta_prune=1.0)
    osc = torch.zeros(net.edge_capacity)
    osc[0] = 1.0
    drive(net, spm, lambda t: osc * (0.01 if t % 2 else -0.01), 20)
    proposed = spm.propose(net)
    assert net.n_hidden == 0  # propose never mutates
    edits = spm.step(net)
    counts = edits.counts()
    assert counts.get("add_neuron") == 1 and counts.get("remove_edge") == 1
    assert net.n_hidden == 1 and (1, 2) not in set(zip(*(t.tolist() for t in net.edges()[:2])))
    relay = net.hidden_ids().tolist()[0]
    pairs = set(zip(*(t.tolist() for t in net.edges()[:2])))
    assert {(0, relay), (relay, 2), (0, 2)} <= pairs  # the original edge is kept
    assert len(proposed) == len(edits)


def test_steady_edges_do_not_grow():
    net = npl.GraphNet(2, 1, seed=0)
    spm = SPM(window=20, interval=20, warmup=20, min_age=20, p_rand=0.0, prune=False)
    drift = torch.full((net.edge_capacity,), 0.01)
    drive(net, spm, lambda t: drift, 20)
    assert not spm.step(net) and net.n_hidden == 0


def test_young_edges_are_protected_and_schedule_is_respected():
    net = npl.GraphNet(2, 1, seed=0, connect="none")
    e = npl.Edits().add_edge(0, 2, weight=0.0)
    net.apply_edits(e)
    spm = SPM(window=10, interval=10, warmup=10, min_age=50, p_rand=0.0, eta_prune=1.0)
    drive(net, spm, lambda t: torch.zeros(net.edge_capacity), 10)
    assert spm.due() and not spm.step(net)  # due, but the edge is younger than min_age
    spm.observe(net)
    assert not spm.due()


def test_ablations_are_configurations():
    net = npl.GraphNet(2, 1, seed=0)
    grow_only = SPM(window=10, interval=10, warmup=10, min_age=10, prune=False, p_rand=1.0)
    no_growth = SPM(window=10, interval=10, warmup=10, min_age=10, edge_growth=False, random_growth=False,
                    eta_prune=1.0, tau_w=10.0, tau_delta=10.0)
    osc = torch.ones(net.edge_capacity)
    for spm in (grow_only, no_growth):
        n = npl.GraphNet(2, 1, seed=0)
        drive(n, spm, lambda t: osc * (0.01 if t % 2 else -0.01), 10)
        counts = spm.step(n).counts()
        if spm is grow_only:
            assert counts.get("add_neuron", 0) > 0 and "remove_edge" not in counts
            assert n.n_hidden == counts["add_neuron"] and n.n_edges >= 2
        else:
            assert "add_neuron" not in counts and "add_edge" not in counts and counts["remove_edge"] == 2
            assert n.n_hidden == 0 and n.n_edges == 0


@pytest.mark.parametrize("options, message", [
    ({"window": 0}, "window=0"), ({"tau_w": -1.0}, "tau_w=-1.0"), ({"eta_prune": 1.5}, "eta_prune=1.5"),
    ({"interval": -3}, "interval=-3"), ({"lambda_edge": float("nan")}, "lambda_edge=nan"),
    ({"prune": "yes"}, "prune='yes'"), ({"windw": 5}, "unknown SPM option 'windw'"),
])
def test_bad_spm_config_names_the_value(options, message):
    with pytest.raises(npl.ConfigError, match=message):
        SPM(**options)


def test_random_growth_keeps_the_graph_acyclic_and_new_edges_start_at_zero():
    net = npl.GraphNet.mlp(3, [4, 4], 2, seed=0)
    spm = SPM(SPMConfig(window=5, interval=5, warmup=5, min_age=5, p_rand=1.0, rho_rand=1.0,
                        edge_growth=False, prune=False))
    x = torch.randn(4, 3)
    y = net(x).detach()
    drive(net, spm, lambda t: torch.zeros(net.edge_capacity), 5)
    edits = spm.step(net)
    assert edits.counts()["add_edge"] > 0
    assert torch.allclose(net(x), y)  # zero-weight edges change nothing
    level = net.levels()
    src, dst, _ = net.edges()
    assert bool((level[src] < level[dst]).all())


def test_spm_restarts_its_windows_when_the_edge_storage_is_packed():
    net = npl.GraphNet.mlp(4, [16], 2, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rule = SPM(window=5, interval=5, warmup=5, min_age=5)
    rule.observe(net)
    src, dst, _ = net.edges()
    edits = npl.Edits()
    for s, d in list(zip(src.tolist(), dst.tolist()))[:60]:
        edits.remove_edge(s, d)
    net.apply_edits(edits, optimizer=opt)
    net.pack_edges(opt)
    for _ in range(12):
        net(torch.randn(8, 4)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
        rule.observe(net)
        rule.step(net, opt)
    assert rule.delta.size == net.edge_capacity
    _, _, mature = rule.edge_statistics()
    assert mature[: net.n_edges].all()  # full windows again after the restart


def test_step_after_the_storage_grew_since_observe_treats_new_slots_as_unobserved():
    # a user's own edits (or the SPM's last event) may grow the storage between observe and step
    net = npl.GraphNet(4, 2, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    spm = npl.rules.SPM(warmup=5, interval=5, window=5, min_age=1, prune_inactive=True)
    x = torch.randn(8, 4)
    events = 0
    for t in range(10):
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
        spm.observe(net)
        fresh = set()
        if t in (4, 9):
            before = set(zip(*(v.tolist() for v in net.edges()[:2])))
            e = npl.Edits()
            for _ in range(40):
                e.add_neuron(between=(0, 4))
            net.apply_edits(e, optimizer=opt)
            fresh = set(zip(*(v.tolist() for v in net.edges()[:2]))) - before
            assert net.edge_capacity > spm.delta.size  # the statistics have not seen these slots
        spm.step(net, opt)
        if spm.due():
            events += 1
        after = set(zip(*(v.tolist() for v in net.edges()[:2])))
        assert fresh <= after  # unobserved edges are neither pruned nor relayed
    assert events == 2 and len(spm.events) == 2 and net.n_hidden >= 80


def test_a_window_too_large_to_hold_is_a_config_error():
    with pytest.raises(npl.ConfigError, match="window=100000000000 must be an integer >= 1 and <= 100000"):
        npl.rules.SPM(window=100_000_000_000)
