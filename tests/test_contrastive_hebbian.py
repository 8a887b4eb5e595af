"""The SPM with a Hebbian rule and no optimizer: the rule's formula, the distillation learner
that uses it, and the smgrnn experiment's -hebbian variants."""
import pytest
import torch

import neuroplastic as npl
from neuroplastic.rules import ContrastiveHebbian


def _traced(net, x):
    traces = []
    handle = net.register_trace_hook(lambda n, t: traces.append(t))
    out = net(x).detach()
    handle.remove()
    return out, traces[-1]


def test_output_edges_follow_pre_times_error_and_hidden_edges_follow_ojas_rule():
    # inputs 0, 1; output 2; hidden 3: edges 0->2, 1->2, 0->3, 3->2
    net = npl.GraphNet.from_edges(2, 1, 1, [0, 1, 0, 3], [2, 2, 3, 2], weight=[0.5, -0.3, 0.8, 0.4])
    x = torch.tensor([[1.0, -2.0], [0.5, 1.0], [0.0, 3.0]])
    out, trace = _traced(net, x)
    error = torch.tensor([[0.2], [-0.1], [0.4]])
    rule = ContrastiveHebbian(eta=0.5, hidden="oja", eta_hidden=0.25)
    dw, db = rule.delta(net, trace, error)
    h = torch.tanh(0.8 * x[:, 0] + net.bias.detach()[3])
    e = error[:, 0]
    slots = {(int(s), int(d)): i for i, (s, d) in enumerate(zip(*net.edges()[:2]))}
    torch.testing.assert_close(dw[slots[0, 2]], 0.5 * (x[:, 0] * e).mean())
    torch.testing.assert_close(dw[slots[1, 2]], 0.5 * (x[:, 1] * e).mean())
    torch.testing.assert_close(dw[slots[3, 2]], 0.5 * (h * e).mean())
    torch.testing.assert_close(dw[slots[0, 3]], 0.25 * (h * (x[:, 0] - h * 0.8)).mean())  # Oja
    torch.testing.assert_close(db, 0.5 * e.mean().reshape(1))


def test_fixed_hidden_rule_changes_only_the_edges_into_outputs_and_their_biases():
    net = npl.GraphNet.mlp(3, [4], 2, seed=0)
    before_w, before_b = net.weight.detach().clone(), net.bias.detach().clone()
    rule = ContrastiveHebbian(eta=0.1, hidden="fixed")
    _, trace = _traced(net, torch.randn(5, 3))
    rule.observe(net, trace)
    rule.teach(torch.randn(5, 2))
    rule.update(net)
    into_output = net.edge_alive & (net.edge_dst >= 3) & (net.edge_dst < 5)
    changed = net.weight.detach() != before_w
    assert bool(changed[into_output].all()) and not bool(changed[~into_output].any())
    bias_changed = net.bias.detach() != before_b
    assert bool(bias_changed[3:5].all()) and not bool(bias_changed[5:].any())


def test_hebbian_distillation_builds_no_autograd_graph_and_never_makes_an_optimizer(monkeypatch):
    def no_adam(*args, **kwargs):
        raise AssertionError("an optimizer was built for the Hebbian learner")

    monkeypatch.setattr(torch.optim, "Adam", no_adam)
    seen = []
    original = ContrastiveHebbian.update

    def spy(self, net):
        seen.append((torch.is_grad_enabled(), net.weight.grad))
        return original(self, net)

    monkeypatch.setattr(ContrastiveHebbian, "update", spy)
    r = npl.distill("CartPole-v1", None, model="smgrnn", seed=0, learner="hebbian", steps=300, n_data=800,
                    eval_every=300, eval_episodes=1, curve_episodes=1, warmup=50, interval=50, window=50,
                    min_age=50)
    assert len(seen) == 300 and all(enabled is False and grad is None for enabled, grad in seen)
    core = r["student"].core
    assert core.weight.grad is None and core.weight.grad_fn is None
    assert sum(e["relays"] for e in r["events"]) > 0   # the SPM grew the net from the rule's Δw


def test_hebbian_learner_imitates_the_cartpole_teacher():
    r = npl.distill("CartPole-v1", None, model="static", seed=0, learner="hebbian", steps=2000, n_data=4000,
                    eval_every=2000, eval_episodes=5, curve_episodes=1)
    assert r["return_mean"] >= 475


def test_hebbian_run_resumed_from_its_checkpoint_equals_an_uninterrupted_run(tmp_path):
    opts = dict(learner="hebbian", steps=400, n_data=1000, eval_every=200, eval_episodes=2, curve_episodes=1,
                window=50, interval=50, warmup=50, min_age=50, p_rand=0.5, checkpoint_every=100,
                tau_w=0.05, tau_delta=1e-3, eta_prune=0.5)
    full = npl.distill("CartPole-v1", None, model="smgrnn", seed=1, **opts)
    path = tmp_path / "run.ckpt"
    npl.distill("CartPole-v1", None, model="smgrnn", seed=1, checkpoint=path, **{**opts, "steps": 200})
    resumed = npl.distill("CartPole-v1", None, model="smgrnn", seed=1, checkpoint=path, **opts)
    a, b = full["student"].core, resumed["student"].core
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias) and a.n_hidden == b.n_hidden
    assert resumed["events"] == full["events"] and resumed["return_mean"] == full["return_mean"]
    with pytest.raises(npl.CheckpointError, match="different run"):  # an Adam run cannot continue it
        npl.distill("CartPole-v1", None, model="smgrnn", seed=1, checkpoint=path,
                    **{**opts, "learner": "adam"})


def test_bad_hebbian_settings_are_one_clear_error():
    with pytest.raises(npl.ConfigError, match="model 'mlp-16' is a plain torch MLP"):
        npl.distill("CartPole-v1", None, model="mlp-16", learner="hebbian", steps=1)
    with pytest.raises(npl.ConfigError, match="learner"):
        npl.distill("CartPole-v1", None, model="smgrnn", learner="sgd", steps=1)
    with pytest.raises(npl.ConfigError, match="hebbian_hidden"):
        npl.distill("CartPole-v1", None, model="smgrnn", learner="hebbian", hebbian_hidden="pca", steps=1)
    with pytest.raises(npl.ConfigError, match="eta"):
        ContrastiveHebbian(eta=0)
    net = npl.GraphNet.mlp(3, [4], 2, seed=0)
    _, trace = _traced(net, torch.randn(5, 3))
    with pytest.raises(npl.ConfigError, match="error has shape"):
        ContrastiveHebbian().delta(net, trace, torch.zeros(5, 3))
    with pytest.raises(npl.ConfigError, match="another network"):
        ContrastiveHebbian().delta(npl.GraphNet.mlp(3, [40], 2, seed=0), trace, torch.zeros(5, 2))


def test_smgrnn_experiment_names_the_hebbian_variants_and_refuses_an_mlp_one():
    from neuroplastic.experiments.smgrnn import variant_model
    assert variant_model("smgrnn-hebbian") == ("smgrnn", {"learner": "hebbian"})
    assert variant_model("static-hebbian") == ("static", {"learner": "hebbian"})
    with pytest.raises(npl.ConfigError, match="unknown variant"):
        variant_model("mlp-16-hebbian")


def test_trainers_refuse_the_rule_as_a_plain_rule_and_hebbian_settings_without_the_learner():
    with pytest.raises(npl.ConfigError, match="learner='hebbian'"):
        npl.distill("CartPole-v1", None, model="static", rule=ContrastiveHebbian(), steps=1)
    with pytest.raises(npl.ConfigError, match="learner='hebbian'"):
        npl.train_supervised(npl.GraphNet.mlp(2, [3], 2, seed=0), torch.randn(8, 2), torch.zeros(8, dtype=torch.long),
                             rule=ContrastiveHebbian())
    with pytest.raises(npl.ConfigError, match="hebbian_lr given with learner='adam'"):
        npl.distill("CartPole-v1", None, model="static", hebbian_lr=0.3, steps=1)


def test_smgrnn_cli_takes_the_learner_from_the_variant_name_only(tmp_path, capsys):
    from neuroplastic.cli import main
    out = tmp_path / "run"
    assert main(["run", "smgrnn", "--quick", "--set", "learner=hebbian", "--out", str(out), "--no-progress"]) == 2
    assert "unknown smgrnn option 'learner'" in capsys.readouterr().err
    assert not out.exists()   # refused before any job ran
