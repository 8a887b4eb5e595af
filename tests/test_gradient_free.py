"""ES, Hebbian and static controller populations, and the hebbian experiment."""
import json

import numpy as np
import pytest
import torch

import neuroplastic as npl
from neuroplastic.cli import main
from neuroplastic.core.trace import BatchTrace
from neuroplastic.evolve.controllers import HebbianControllers, StaticControllers
from neuroplastic.evolve.es import ES
from neuroplastic.rules import Hebbian


def test_es_maximises_a_concave_function():
    es = ES(20, popsize=12, sigma=0.5, seed=0)
    es.run(lambda c: -(c - 2).pow(2).sum(1), generations=150)
    assert es.best_fitness > -1e-2
    assert torch.allclose(es.mean(), torch.full((20,), 2.0), atol=0.1)


def test_es_resumed_from_its_state_dict_continues_to_the_same_numbers():
    def fitness(c):
        return -(c - 1).abs().sum(1)
    whole = ES(10, popsize=8, sigma=0.3, seed=4)
    whole.run(fitness, generations=12)
    first = ES(10, popsize=8, sigma=0.3, seed=4)
    first.run(fitness, generations=5)
    state = first.state_dict()
    np.random.seed(123)  # anything else drawing from numpy's generator in between
    resumed = ES(10, popsize=8, sigma=0.3, seed=4)
    resumed.load_state_dict(state)
    resumed.run(fitness, generations=12)
    assert torch.equal(resumed.mean(), whole.mean())
    assert [r["best"] for r in resumed.history] == [r["best"] for r in whole.history]
    with pytest.raises(npl.CheckpointError, match="settings"):
        ES(10, popsize=9, sigma=0.3, seed=4).load_state_dict(state)


def test_es_state_holds_no_pickle_and_a_tampered_or_pickled_state_is_refused():
    es = ES(6, popsize=5, sigma=0.3, seed=1)
    es.run(lambda c: -c.pow(2).sum(1), generations=4)
    state = es.state_dict()
    # plain tensors and numbers only: nothing that loading would have to unpickle
    assert set(state) >= {"told", "x0", "mean", "step_size", "numpy_rng"} and "cma" not in state
    assert state["told"].shape == (4, 5) and state["told"].dtype == torch.float64
    tampered = dict(state, told=state["told"].clone())
    tampered["told"][2] *= -1  # the ranking reversed (CMA-ES reads ranks): another mean
    with pytest.raises(npl.CheckpointError, match="does not replay to its saved state"):
        ES(6, popsize=5, sigma=0.3, seed=1).load_state_dict(tampered)
    old_format = dict(state, cma=torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(npl.CheckpointError, match="never unpickled"):
        ES(6, popsize=5, sigma=0.3, seed=1).load_state_dict(old_format)
    with pytest.raises(npl.CheckpointError, match="lacks mean"):
        ES(6, popsize=5, sigma=0.3, seed=1).load_state_dict({k: v for k, v in state.items() if k != "mean"})


@pytest.mark.parametrize("change, message", [
    ({"step_size": "x"}, "step_size='x' is not a number"),
    ({"best_fitness": float("nan")}, "best_fitness=nan is not a number"),
    ({"generation": 3.0}, "generation=3.0 must be an integer >= 0"),
    ({"history": 5}, "history is not a list"),
    ({"history": [1, 2]}, "history is not a list"),
    ({"mean": None}, "does not replay to its saved state"),
    ({"best_fitness": 1e9}, "best candidate or best fitness is not the one its fitness log replays to"),
    ({"best": torch.zeros(4)}, "best candidate or best fitness is not the one its fitness log replays to"),
])
def test_a_refused_es_state_is_named_and_leaves_the_es_as_it_was(change, message):
    def fitness(c):
        return -c.pow(2).sum(1)
    saved = ES(4, popsize=5, sigma=0.3, seed=1)
    saved.run(fitness, generations=3)
    es = ES(4, popsize=5, sigma=0.3, seed=1)
    es.run(fitness, generations=1)
    before = (es.generation, es.mean().clone(), list(es.history))
    with pytest.raises(npl.CheckpointError, match=message):
        es.load_state_dict({**saved.state_dict(), **change})
    assert (es.generation, list(es.history)) == (before[0], before[2]) and torch.equal(es.mean(), before[1])
    es.run(fitness, generations=3)  # and it goes on as an unrefused one would
    assert torch.equal(es.mean(), saved.mean())


def test_es_refuses_fitness_of_the_wrong_length_or_not_finite():
    es = ES(3, popsize=4, seed=0)
    c = es.ask()
    with pytest.raises(npl.ConfigError, match=r"3 values\) for 4 candidates"):
        es.tell(c, torch.zeros(3))
    with pytest.raises(npl.ConfigError, match=r"shape \(2, 2\) \(4 values\) for 4 candidates"):
        es.tell(c, torch.zeros(2, 2))
    with pytest.raises(npl.ConfigError, match="fitness returned NoneType"):
        es.tell(c, None)
    with pytest.raises(npl.ConfigError, match=r"candidates of shape \(3, 3\)"):
        es.tell(c[:3], torch.zeros(4))
    with pytest.raises(npl.ConfigError, match="NaN"):
        es.tell(c, torch.tensor([0.0, float("nan"), 0.0, 0.0]))
    with pytest.raises(npl.ConfigError, match="popsize"):
        ES(3, popsize=0)


def test_es_numbers_depend_on_its_seed_alone_not_on_numpys_global_generator():
    def fitness(c):
        return -(c - torch.arange(5.0)).pow(2).sum(1)

    alone = ES(5, popsize=8, sigma=0.5, seed=0)
    alone.run(fitness, 10)
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    a, b = ES(5, popsize=8, sigma=0.5, seed=0), ES(5, popsize=8, sigma=0.5, seed=0)
    assert np.array_equal(np.random.get_state()[1], before)  # making an ES leaves the caller's generator be
    for _ in range(10):  # two interleaved, with the caller drawing and reseeding in between
        for es in (a, b):
            x = es.ask()
            np.random.rand(3)
            es.tell(x, fitness(x))
        np.random.seed(123)
    for es in (a, b):
        assert torch.equal(es.mean(), alone.mean()) and es.best_fitness == alone.best_fitness


def test_es_stds_scale_each_parameters_first_spread_and_are_part_of_its_settings():
    spread = ES(4, popsize=400, sigma=1.0, seed=0, stds=[1.0, 1.0, 0.01, 0.01]).ask().std(0)
    assert torch.all((spread[:2] > 0.8) & (spread[:2] < 1.2)) and torch.all((spread[2:] > 0.008) & (spread[2:] < 0.012))
    state = ES(4, popsize=8, sigma=1.0, seed=0, stds=[1.0, 1.0, 0.01, 0.01]).state_dict()
    with pytest.raises(npl.CheckpointError, match="settings"):
        ES(4, popsize=8, sigma=1.0, seed=0).load_state_dict(state)
    for bad in ([1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 1.0], [1.0, float("nan"), 1.0, 1.0]):
        with pytest.raises(npl.ConfigError, match="stds must be 4 finite numbers > 0"):
            ES(4, popsize=8, stds=bad)


def test_hebbian_rule_on_a_population_equals_the_rule_on_each_member():
    nets = [npl.GraphNet.mlp(3, [4], 2, seed=i) for i in range(3)]
    pop = npl.GraphBatch.from_nets(nets)
    E = pop.edge_capacity
    gen = torch.Generator().manual_seed(0)
    coeffs = {k: torch.randn(3, E, generator=gen) * 0.1 for k in ("eta", "A", "B", "C", "D")}
    x = torch.randn(3, 5, 3, generator=gen)
    _, activity = pop(x, return_activity=True)
    rule = Hebbian(**coeffs, normalise="layer")
    rule.observe(pop, BatchTrace(activity))
    rule.update(pop)
    for i, net in enumerate(nets):
        assert net.edge_capacity == E  # from_nets keeps each member's edge slots
        single = Hebbian(**{k: v[i] for k, v in coeffs.items()}, normalise="layer")
        traces = []
        handle = net.register_trace_hook(lambda n, t: traces.append(t))
        net(x[i])
        handle.remove()
        single.observe(net, traces[-1])
        single.update(net)
        assert torch.allclose(pop.to_net(i)(x[i]), net(x[i]), atol=1e-5)


def test_hebbian_controllers_build_no_autograd_graph_even_with_grad_enabled():
    task = HebbianControllers("CartPole-v1", hidden=[6], episodes=1, max_steps=20, seed=0)
    candidates = torch.randn(2, task.n_params, requires_grad=True)  # as an autograd-based ES would hold them
    policies = task.policies(candidates, 0, 1)
    with torch.enable_grad():
        y = policies(torch.randn(2, 1, 4))
    assert y.grad_fn is None and not y.requires_grad
    assert policies.batch.weight.grad_fn is None and not policies.batch.weight.requires_grad
    task.close()


def test_hebbian_update_itself_builds_no_graph_on_weights_and_coefficients_that_require_grad():
    # the rule's own no_grad, without any caller's: an in-place update of a leaf that requires
    # grad would raise under autograd, and coefficients that require grad would enter the graph
    net = npl.GraphNet.mlp(3, [4], 2, seed=0)
    coefficients = {k: torch.randn(net.edge_capacity, requires_grad=True) for k in ("eta", "A", "B", "C", "D")}
    rule = Hebbian(**coefficients)
    traces = []
    net.register_trace_hook(lambda n, t: traces.append(t))
    with torch.enable_grad():
        net(torch.randn(5, 3))
        rule.observe(net, traces[-1])
        before = net.weight.detach().clone()
        rule.update(net)
    assert net.weight.requires_grad and net.weight.grad_fn is None  # still the leaf parameter
    assert not torch.equal(net.weight.detach(), before)
    assert all(c.grad is None for c in coefficients.values())


def test_vector_envs_give_each_hebbian_row_the_initial_weights_of_its_own_episode():
    sync = HebbianControllers("CartPole-v1", hidden=[4], episodes=2, seed=0)
    vector = HebbianControllers("CartPole-v1", hidden=[4], episodes=2, seed=0, vectorization="vector")
    candidates = torch.zeros(3, sync.n_params)  # a rule that changes nothing: the rows keep their start
    start_sync = sync.policies(candidates, 7, 2).batch.weight
    start_vector = vector.policies(candidates, 7, 2).batch.weight
    assert torch.equal(start_sync[0], start_sync[2])        # every candidate meets episode 0 alike
    assert not torch.equal(start_vector[0], start_vector[2])  # row 2 is episode 7 + 2 of its own
    live = sync._one.edge_alive[0]
    torch.testing.assert_close(start_vector[:, live], vector.initial_weights(7, 6))
    sync.close()
    vector.close()


@pytest.mark.parametrize("kind", [HebbianControllers, StaticControllers])
def test_batched_controller_returns_equal_member_by_member_returns(kind):
    task = kind("CartPole-v1", hidden=[5], episodes=2, max_steps=60, seed=0)
    candidates = torch.randn(4, task.n_params, generator=torch.Generator().manual_seed(1))
    together = task.returns(candidates, first_seed=7)
    alone = np.stack([task.returns(candidates[i:i + 1], first_seed=7)[0] for i in range(4)])
    assert together.shape == (4, 2)
    assert np.array_equal(together, alone)
    task.close()


def test_hebbian_weights_change_within_an_episode_and_start_random_in_each():
    task = HebbianControllers("CartPole-v1", hidden=[5], episodes=2, seed=0)
    start = task.initial_weights(first_seed=3, episodes=2)
    assert start.shape == (2, task.n_synapses) and not torch.equal(start[0], start[1])
    assert float(start.abs().max()) <= task.init
    policies = task.policies(torch.ones(1, task.n_params) * 0.1, 3, 2)
    before = policies.batch.weight.clone()
    policies(torch.randn(1, 2, 4))
    assert not torch.equal(before, policies.batch.weight)
    task.close()


def test_controllers_refuse_envs_they_cannot_handle_and_bad_candidates():
    with pytest.raises(npl.ConfigError, match="1-D Box"):
        StaticControllers("FrozenLake-v1")
    task = StaticControllers("CartPole-v1", hidden=[3])
    with pytest.raises(npl.ConfigError, match="expected"):
        task.returns(torch.zeros(0, task.n_params), 0)
    with pytest.raises(npl.ConfigError, match="expected"):
        task.returns(torch.zeros(2, task.n_params + 1), 0)
    task.close()


def test_hebbian_experiment_quick_writes_both_variants(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "hebbian", "--quick", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert {r["variant"] for r in results["rows"]} == {"hebbian", "static"}
    for row in results["rows"]:
        m = row["metrics"]
        assert len(m["returns"]) == 5 and m["evaluations"] == 3 * 8 * 1
    assert "hebbian" in (out / "report.md").read_text() and (out / "fitness.png").exists()
    saved = npl.load(out / "nets" / "CartPole-v1__hebbian__seed0.ckpt")
    assert saved["rule_class"] == "Hebbian"


@pytest.mark.parametrize("args, message", [
    (["--set", "popsize=0"], "popsize"),
    (["--envs", "FrozenLake-v1"], "1-D Box"),
    (["--set", "variants=hebb"], "unknown variant"),
    (["--set", "normalise=max"], "normalise"),
])
def test_hebbian_experiment_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert main(["run", "hebbian", "--quick", "--out", str(tmp_path / "r"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_hebbian_training_episodes_may_not_reach_the_held_out_episodes():
    from neuroplastic.errors import ConfigError
    from neuroplastic.experiments import get_experiment
    exp = get_experiment("hebbian")
    with pytest.raises(ConfigError, match="reach reset seed 10099, into the held-out episodes"):
        exp.config(False, False, {"seeds": 1, "episodes": 100, "generations": 101})  # trains on 0 .. 10099
    with pytest.raises(ConfigError, match="reach reset seed 10000"):
        exp.config(False, False, {"seeds": 11, "generations": 1, "episodes": 1})  # seed 10 starts at 10000
    assert exp.config(False, False, {"seeds": 1, "episodes": 100, "generations": 100})["generations"] == 100


def test_hebbian_job_seeds_may_not_share_training_episodes():
    from neuroplastic.errors import ConfigError
    from neuroplastic.experiments import get_experiment
    exp = get_experiment("hebbian")
    with pytest.raises(ConfigError, match="generations x episodes = 1200 training episodes a job"):
        exp.config(False, False, {"seeds": 3, "episodes": 2, "generations": 600})  # seed 1 would replay 1000..1199
    assert exp.config(False, False, {"seeds": 3, "episodes": 2, "generations": 500})["generations"] == 500


def test_hebbian_normalise_takes_none_and_the_string_none_alike():
    from neuroplastic.errors import ConfigError
    from neuroplastic.rules import Hebbian
    assert Hebbian(normalise="none").normalise is None and Hebbian(normalise=None).normalise is None
    assert Hebbian(normalise="layer").normalise == "layer"
    with pytest.raises(ConfigError, match="expected one of \\['layer', 'none'\\]"):
        Hebbian(normalise="max")


def test_env_lists_take_spaces_after_commas_and_hebbian_takes_no_hidden_layer():
    from neuroplastic.experiments import get_experiment
    config = get_experiment("hebbian").config(True, False, {"envs": "CartPole-v1, Acrobot-v1", "hidden": []})
    assert config["envs"] == ["CartPole-v1", "Acrobot-v1"] and config["hidden"] == []
    with pytest.raises(npl.ConfigError, match="hidden"):
        get_experiment("hebbian").config(True, False, {"hidden": "wide"})


@pytest.mark.parametrize("env_id, hint", [("CartPole", "did you mean 'CartPole-v1'"),
                                           ("nonexistentmod:Foo-v0", "nonexistentmod")])
def test_an_unversioned_or_unimportable_env_id_is_one_unknown_name_error(env_id, hint):
    with pytest.raises(npl.UnknownNameError, match=hint):
        StaticControllers(env_id, hidden=[4])
    with pytest.raises(npl.UnknownNameError, match=hint):
        npl.evolve.NEAT({"num_inputs": 4, "num_outputs": 2, "pop_size": 4}, seed=0).run_env(env_id, generations=1)


def test_api_inputs_of_the_wrong_kind_are_one_config_error_naming_what_was_expected():
    neat = npl.evolve.NEAT({"num_inputs": 2, "num_outputs": 1, "pop_size": 4}, seed=0)
    cases = [
        (lambda: ES(3, x0="abc"), "x0 must be numbers"),
        (lambda: ES(3, stds="abc"), "stds must be numbers"),
        (lambda: ES(3).run(5, 2), "fitness must be a callable"),
        (lambda: npl.evolve.NEAT({"num_inputs": 2, "num_outputs": 1}, reporters=5), "reporters must be a list"),
        (lambda: npl.evolve.NEAT({"num_inputs": 2, "num_outputs": 1}, reporters=[5]), "int lacks start_generation"),
        (lambda: neat.run(lambda pop: torch.zeros(len(pop)), 1, checkpoint=5), "checkpoint must be a file path"),
        (lambda: StaticControllers("CartPole-v1", hidden=8), "hidden must be a list of layer widths"),
    ]
    for call, message in cases:
        with pytest.raises(npl.ConfigError, match=message):
            call()
    static = StaticControllers("CartPole-v1", hidden=[3])
    one = r"a candidate of shape \(n_params,\) with n_params = 18; got shape \(1, 5\)"  # 4*3 + 3*2 weights
    with pytest.raises(npl.ConfigError, match=one):
        static.network(torch.randn(5))
    assert static.network(torch.zeros(18)).n_edges == 18
    hebbian = HebbianControllers("CartPole-v1", hidden=[3])
    many = r"candidates of shape \(P, n_params\) with n_params = 90; got shape \(90,\)"  # 5 per synapse
    with pytest.raises(npl.ConfigError, match=many):
        hebbian.rule(torch.zeros(90))
    static.close()
    hebbian.close()


def test_es_refuses_a_seed_cma_cannot_take_and_a_target_that_is_no_number_before_any_generation():
    with pytest.raises(npl.ConfigError, match="<= 4294967294"):
        ES(3, seed=2**40)
    es = ES(3, popsize=4, seed=0)
    with pytest.raises(npl.ConfigError, match="target='x'"):
        es.run(lambda c: -c.pow(2).sum(1), 2, target="x")
    assert es.generation == 0


def test_neat_run_refuses_a_non_bool_progress_and_a_folder_checkpoint_before_any_generation(tmp_path):
    neat = npl.evolve.NEAT({"num_inputs": 2, "num_outputs": 1, "pop_size": 4}, seed=0)
    with pytest.raises(npl.ConfigError, match="progress='yes' must be true or false"):
        neat.run(lambda pop: torch.zeros(len(pop)), 2, progress="yes")
    with pytest.raises(npl.CheckpointError, match="it is a directory"):
        neat.run(lambda pop: torch.zeros(len(pop)), 2, checkpoint=tmp_path)
    assert neat.generation == 0


def test_neat_warns_when_elitism_keeps_every_genome():
    with pytest.warns(UserWarning, match="elitism=4 >= pop_size=4: every genome is kept"):
        npl.evolve.NEAT({"num_inputs": 2, "num_outputs": 1, "pop_size": 4, "elitism": 4}, seed=0)


def test_a_neat_python_reporter_is_refused_with_a_line_naming_the_reporter_to_subclass():
    neat_python = pytest.importorskip("neat")
    with pytest.raises(npl.ConfigError, match="StdOutReporter is a neat-python reporter.*subclass "
                                              "neuroplastic.evolve.Reporter"):
        npl.evolve.NEAT({"num_inputs": 2, "num_outputs": 1}, reporters=[neat_python.StdOutReporter(True)])

    class OnlyRows(npl.evolve.Reporter):  # a subclass overrides what it needs
        def __init__(self):
            self.rows = []

        def end_generation(self, row):
            self.rows.append(row)

    only = OnlyRows()
    npl.evolve.NEAT({"num_inputs": 2, "num_outputs": 1, "pop_size": 4}, seed=0, reporters=[only]).run(
        lambda pop: torch.zeros(len(pop)), 2)
    assert [r["generation"] for r in only.rows] == [0, 1]
