"""The one rule protocol: trace hooks, weight rules without autograd, any rule in any trainer."""
import numpy as np
import pytest
import torch

import neuroplastic as npl
from neuroplastic.rules import Hebbian, Rule, RuleDriver


class CountingRule(Rule):
    """A structural rule of the user's own: prunes the smallest live edge every `every` steps."""

    def __init__(self, every: int = 50):
        self.every, self.t, self.removed = every, 0, 0

    def observe(self, net, trace=None):
        self.t += 1

    def step(self, net, optimizer=None):
        e = npl.Edits()
        if self.t % self.every == 0 and net.n_edges > 4:
            src, dst, w = net.edges()
            i = int(w.abs().argmin())
            e.remove_edge(int(src[i]), int(dst[i]))
            net.apply_edits(e, optimizer=optimizer)
            self.removed += 1
        return e

    def state_dict(self):
        return {"every": self.every, "t": self.t, "removed": self.removed}

    def load_state_dict(self, state):
        self.every, self.t, self.removed = state["every"], state["t"], state["removed"]


def test_trace_hook_gives_per_sample_activity_and_stops_when_removed():
    net = npl.GraphNet.mlp(3, [4], 2, seed=0)
    seen = []
    handle = net.register_trace_hook(lambda n, trace: seen.append(trace))
    x = torch.randn(5, 3)
    y = net(x)
    trace = seen[-1]
    activity = trace.activity()
    assert activity.shape == (5, net.capacity)
    assert torch.equal(activity[:, :3], x) and torch.allclose(activity[:, 3:5], y.detach())
    src, dst, _ = net.edges()
    pre, post = trace.pre_post(src, dst)
    assert pre.shape == post.shape == (5, net.n_edges)
    handle.remove()
    net(x)
    assert len(seen) == 1


def test_recurrent_trace_pairs_a_sweep_with_the_one_before():
    net = npl.GraphNet.dense_recurrent(2, 1, 3, steps=3, activation="tanh", seed=0)
    traces = []
    net.register_trace_hook(lambda n, t: traces.append(t))
    x = torch.randn(4, 2)
    _, states = net(x, return_states=True)
    trace = traces[-1]
    assert len(trace.states) == 4  # the written input, then one state per sweep
    pre, post = trace.pre_post(torch.tensor([0]), torch.tensor([3]))
    torch.testing.assert_close(pre[:, 0], states[-2][:, 0].detach())
    torch.testing.assert_close(post[:, 0], states[-1][:, 3].detach())


def test_hebbian_update_changes_weights_without_building_an_autograd_graph():
    net = npl.GraphNet.mlp(3, [4], 2, seed=0)
    rule = Hebbian(eta=0.1, A=1.0, B=0.1, C=0.1, D=0.01)
    driver = RuleDriver(rule, net)
    before = net.weight.detach().clone()
    net(torch.randn(6, 3))                    # a forward with autograd on, as in training
    grad_enabled = []
    original = rule.delta

    def spy(n, trace):
        grad_enabled.append(torch.is_grad_enabled())
        return original(n, trace)

    rule.delta = spy
    driver.after_step()
    assert grad_enabled == [False]
    assert net.weight.grad is None and net.weight.grad_fn is None
    changed = net.weight.detach() != before
    assert bool(changed[net.edge_alive].any()) and not bool(changed[~net.edge_alive].any())


def test_hebbian_abcd_terms_match_the_formula():
    net = npl.GraphNet(2, 1, seed=0, activation="identity")  # edges 0->2 and 1->2
    rule = Hebbian(eta=0.5, A=2.0, B=3.0, C=-1.0, D=0.25)
    x = torch.tensor([[1.0, -2.0], [0.5, 1.0]])
    traces = []
    net.register_trace_hook(lambda n, t: traces.append(t))
    out = net(x).detach()[:, 0]
    delta = rule.delta(net, traces[-1])
    for slot, pre in ((0, x[:, 0]), (1, x[:, 1])):
        expected = 0.5 * (2.0 * (pre * out).mean() + 3.0 * pre.mean() - out.mean() + 0.25)
        torch.testing.assert_close(delta[slot], expected)


def test_hebbian_per_synapse_coefficients_and_bad_values():
    net = npl.GraphNet(2, 1, seed=0)
    A = torch.zeros(net.edge_capacity)
    A[0] = 1.0
    rule = Hebbian(eta=1.0, A=A)
    traces = []
    net.register_trace_hook(lambda n, t: traces.append(t))
    net(torch.ones(1, 2))
    delta = rule.delta(net, traces[-1])
    assert delta[0] != 0 and delta[1] == 0
    with pytest.raises(npl.ConfigError, match="Hebbian eta"):
        Hebbian(eta=float("nan"))
    with pytest.raises(npl.ConfigError, match=r"shape \(3,\); the network has"):
        Hebbian(A=torch.ones(3)).delta(net, traces[-1])
    with pytest.raises(npl.ConfigError, match=r"shape \(3, "):  # too many: not silently flattened
        Hebbian(A=torch.ones(3, net.edge_capacity)).delta(net, traces[-1])


def test_hebbian_observe_takes_a_trace_or_a_populations_activity_and_refuses_anything_else():
    net = npl.GraphNet.mlp(2, [3], 1, seed=0)
    pop = npl.GraphBatch.from_nets([net, net])
    _, activity = pop(torch.rand(2, 4, 2), return_activity=True)
    rule, before = Hebbian(eta=0.1), pop.weight.clone()
    rule.observe(pop, activity)  # the tensor, as hebbian.md shows it, is wrapped in a BatchTrace
    rule.update(pop)
    assert not torch.equal(pop.weight, before)
    with pytest.raises(npl.ConfigError, match="needs a BatchTrace"):
        rule.observe(pop, "activity")
    with pytest.raises(npl.ConfigError, match=r"this population's passes give \(2, B, "):
        rule.observe(pop, activity[:1])
    with pytest.raises(npl.ConfigError, match="on a GraphNet needs a Trace"):
        rule.observe(net, activity)


@pytest.mark.parametrize("state, message", [
    ({}, "not a Hebbian state_dict"),
    ({"coefficients": {"eta": "x", "A": 1, "B": 0, "C": 0, "D": 0}, "clip": None}, "Hebbian eta='x'"),
    ({"coefficients": {"eta": 1, "A": 1, "B": 0, "C": 0, "D": 0}, "clip": -3}, "Hebbian clip"),
])
def test_a_damaged_hebbian_state_dict_is_refused_and_the_rule_kept(state, message):
    rule = Hebbian(eta=0.5)
    with pytest.raises(npl.CheckpointError, match=message):
        rule.load_state_dict(state)
    assert rule.coefficients["eta"] == 0.5
    copy = Hebbian()
    copy.load_state_dict(Hebbian(eta=0.2, A=torch.ones(4), clip=2.0, normalise="layer").state_dict())
    assert copy.coefficients["eta"] == 0.2 and copy.clip == 2.0 and copy.normalise == "layer"


def test_a_users_rule_drives_distillation_and_resumes_with_it(tmp_path):
    options = dict(steps=300, n_data=400, eval_every=150, eval_episodes=2, curve_episodes=1)
    whole = npl.distill("CartPole-v1", model="static", seed=0, rule=CountingRule(every=50), **options)
    assert whole["rule"] == "CountingRule" and whole["n_edges"] == 104 - 6
    path = tmp_path / "run.ckpt"
    rule = CountingRule(every=50)
    part = dict(options, checkpoint_every=100)
    npl.distill("CartPole-v1", model="static", seed=0, rule=rule, checkpoint=path, **dict(part, steps=100))
    resumed_rule = CountingRule(every=50)
    resumed = npl.distill("CartPole-v1", model="static", seed=0, rule=resumed_rule, checkpoint=path, **part)
    assert resumed_rule.t == 300 and resumed_rule.removed == 6
    assert resumed["return_mean"] == whole["return_mean"] and resumed["final_loss"] == whole["final_loss"]


def test_distill_refuses_a_rule_for_an_mlp_and_spm_options_beside_a_rule():
    with pytest.raises(npl.ConfigError, match="GraphNet student"):
        npl.distill("CartPole-v1", model="mlp", rule=CountingRule())
    with pytest.raises(npl.ConfigError, match="together with rule="):
        npl.distill("CartPole-v1", model="static", rule=CountingRule(), tau_w=0.1)
    with pytest.raises(npl.ConfigError, match="rule protocol"):
        npl.distill("CartPole-v1", model="static", rule=object())


def test_supervised_trainer_runs_any_rule_and_learns():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    net = npl.GraphNet.mlp(4, [16], 2, seed=0)
    rule = CountingRule(every=10)
    history = npl.train_supervised(net, x, y, epochs=15, lr=1e-2, batch_size=64, rule=rule, x_val=x, y_val=y)
    assert history[-1]["val"] > 0.9
    assert rule.removed == 15 * 7 // 10 and net.n_edges == 4 * 16 + 16 * 2 - rule.removed


def test_train_urn_drives_a_rule_after_every_step():
    from neuroplastic.tasks.datasets import shells
    data = shells(n_train=256, n_test=10)
    net = npl.URN(10, 3, size=30, steps=3)
    rule = CountingRule(every=10_000)
    npl.train_urn(net, data.x_train, data.y_train, epochs=2, batch_size=64, rule=rule)
    assert rule.t == 2 * 4


def test_rule_state_round_trips_through_a_checkpoint(tmp_path):
    net = npl.GraphNet(3, 2, seed=0)
    rule = Hebbian(eta=0.2, A=torch.arange(net.edge_capacity, dtype=torch.float32), clip=2.0)
    npl.save(tmp_path / "h.ckpt", net, rule=rule)
    state = npl.load(tmp_path / "h.ckpt")
    restored = npl.rules.rule_from_state({"class": state["rule_class"], "state": state["rule"]})
    assert isinstance(restored, Hebbian) and restored.clip == 2.0
    assert torch.equal(restored.coefficients["A"], rule.coefficients["A"])
