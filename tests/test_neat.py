"""NEAT, vectorised: config errors, the paper's operators on hand-built genomes, batched vs
member-by-member evaluation, XOR, seeding, resume, and no autograd on the evolution path."""
import json
from pathlib import Path

import pytest
import torch

import neuroplastic as npl
from neuroplastic.errors import ConfigError
from neuroplastic.evolve import NEAT, load_config
from neuroplastic.evolve.neat.distance import distance
from neuroplastic.evolve.neat.genome import Genomes
from neuroplastic.evolve.neat.innovation import InnovationTable
from neuroplastic.evolve.neat.mutate import add_node, mutate
from neuroplastic.evolve.neat.phenotype import phenotypes
from neuroplastic.evolve.neat.reproduce import crossover, plan_offspring
from neuroplastic.evolve.neat.tasks import paper_xor_fitness, parity_fitness, parity_table, xor_fitness

CONFIGS = Path(npl.__file__).parent / "evolve" / "configs"
XOR = CONFIGS / "xor.ini"


def genome(innovs, weights, enabled=None, n_nodes=3):
    """One genome with genes numbered `innovs` (all 0 -> 2: only the numbers matter here)."""
    G = len(innovs)
    return Genomes(innov=torch.tensor([innovs]), src=torch.zeros(1, G, dtype=torch.long),
                   dst=torch.full((1, G), 2), weight=torch.tensor([weights], dtype=torch.float32),
                   enabled=torch.tensor([enabled or [True] * G]), node_id=torch.arange(n_nodes)[None],
                   bias=torch.zeros(1, n_nodes), response=torch.ones(1, n_nodes),
                   act=torch.zeros(1, n_nodes, dtype=torch.long))


# ---------------------------------------------------------------------------- config
def test_xor_ini_from_neat_python_loads_with_its_values():
    cfg = load_config(XOR)
    assert (cfg.pop_size, cfg.fitness_threshold, cfg.conn_add_prob, cfg.compatibility_threshold) == (150, 3.9, 0.5, 3.0)
    assert cfg.initial_connection == "full" and cfg.activation_options == ("sigmoid",)
    assert load_config({"DefaultGenome": {"num_inputs": 3}, "pop_size": 20}).num_inputs == 3


@pytest.mark.parametrize("edit, fragment", [
    (("[DefaultGenome]", "[DefaultGenome]\nno_such_key = 1"), "key 'no_such_key' is not supported"),
    (("[DefaultGenome]", "[DefaultGenome]\ntime_constant_init_mean = 1.0"), "'time_constant_init_mean'"),
    (("pop_size              = 150", "pop_size = 0"), "pop_size=0 is invalid; expected an integer >= 1"),
    (("conn_add_prob           = 0.5", "conn_add_prob = 1.5"), "conn_add_prob=1.5 is invalid"),
    (("weight_mutate_rate      = 0.8", "weight_mutate_rate = lots"), "weight_mutate_rate='lots' is invalid"),
    (("aggregation_default     = sum", "aggregation_default = product"), "only the 'sum' aggregation"),
    (("activation_options      = sigmoid", "activation_options = sigmoid sin"), "activation 'sin' is not supported"),
    (("feed_forward            = True", "feed_forward = False"), "feed_forward=False is not supported"),
    (("initial_connection      = full", "initial_connection = fs_neat"), "initial_connection='fs_neat'"),
    (("[NEAT]", "[DEFAULT]\nnum_hidden = 0\n[NEAT]"), "a [DEFAULT] section is not supported (num_hidden)"),
])
def test_bad_neat_python_ini_is_one_clear_config_error(tmp_path, edit, fragment):
    path = tmp_path / "bad.ini"
    text = XOR.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError) as info:
        NEAT(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_dict_config_with_unknown_key_names_it():
    with pytest.raises(ConfigError, match="'popsize'"):
        NEAT({"popsize": 10})


# ---------------------------------------------------------------------------- the paper's operators
def test_compatibility_distance_is_the_papers_formula_on_a_hand_built_pair():
    # the paper's Fig. 4 pair: parent 1 holds genes 1-5 and 8, parent 2 genes 1-7, 9 and 10:
    # matching 1-5, disjoint 6, 7 (parent 2) and 8 (parent 1), excess 9, 10 (parent 2)
    a = genome([1, 2, 3, 4, 5, 8], [1.0, 1, 1, 1, 1, 1])
    b = genome([1, 2, 3, 4, 5, 6, 7, 9, 10], [0.0, 1, 1, 1, 3, 0, 0, 0, 0])
    W = (1 + 0 + 0 + 0 + 2) / 5
    c1, c2, c3 = 1.0, 2.0, 0.4
    assert distance(a, b, 11, c1, c2, c3, small_genome=0).item() == pytest.approx(c1 * 2 / 9 + c2 * 3 / 9 + c3 * W)
    # the paper's N = 1 for genomes under 20 genes
    assert distance(a, b, 11, c1, c2, c3, small_genome=20).item() == pytest.approx(c1 * 2 + c2 * 3 + c3 * W)
    assert distance(b, a, 11, c1, c2, c3, small_genome=20).item() == pytest.approx(c1 * 2 + c2 * 3 + c3 * W)
    assert distance(a, a, 11).item() == 0.0


def test_crossover_takes_matching_genes_at_random_and_the_rest_from_the_fitter_parent():
    fitter = genome([1, 2, 3, 4, 5, 8], [1.0] * 6)
    other = genome([1, 2, 3, 4, 5, 6, 7, 9, 10], [2.0] * 9)
    n = 400
    a, b = fitter.take(torch.zeros(n, dtype=torch.long)), other.take(torch.zeros(n, dtype=torch.long))
    child = crossover(a, b, torch.Generator().manual_seed(0))
    assert torch.equal(child.innov, a.innov)                    # disjoint/excess of the fitter only
    from_other = (child.weight[:, :5] == 2.0).float().mean()    # matching genes: either parent
    assert 0.4 < float(from_other) < 0.6
    assert bool((child.weight[:, 5] == 1.0).all())              # gene 8: the fitter parent's


def test_crossover_disables_a_gene_disabled_in_either_parent_with_probability_three_quarters():
    n = 4000
    a = genome([1, 2], [1.0, 1.0], enabled=[False, True]).take(torch.zeros(n, dtype=torch.long))
    b = genome([1, 2], [1.0, 1.0], enabled=[True, True]).take(torch.zeros(n, dtype=torch.long))
    child = crossover(a, b, torch.Generator().manual_seed(1))
    off = 1 - child.enabled[:, 0].float().mean()
    assert abs(float(off) - (0.5 + 0.5 * 0.75)) < 0.03          # inherited at random, then 75% off
    assert bool(child.enabled[:, 1].all())


def test_identical_splits_in_one_generation_share_node_id_and_innovation_numbers():
    cfg = load_config(XOR)
    table = InnovationTable(next_node=3)
    table.connections(torch.tensor([0, 1]), torch.tensor([2, 2]))
    base = Genomes(innov=torch.tensor([[0, 1]]), src=torch.tensor([[0, 1]]), dst=torch.tensor([[2, 2]]),
                   weight=torch.tensor([[0.5, -0.5]]), enabled=torch.tensor([[True, False]]),
                   node_id=torch.arange(3)[None], bias=torch.zeros(1, 3), response=torch.ones(1, 3),
                   act=torch.zeros(1, 3, dtype=torch.long))
    pop = base.take(torch.zeros(6, dtype=torch.long))           # only gene 0 is enabled: all split it
    out, _ = add_node(pop, torch.ones(6, dtype=torch.bool), cfg, table, torch.Generator().manual_seed(0))
    out = out.canonical()
    assert bool((out.node_id[:, 3] == 3).all()) and len(table) == 4
    assert bool((out.innov == out.innov[:1]).all())
    new = out.innov[0, 2:].tolist()
    assert sorted(new) == [2, 3]
    w = {(int(s), int(d)): float(x) for s, d, x in zip(out.src[0], out.dst[0], out.weight[0])}
    assert w[(0, 3)] == 1.0 and w[(3, 2)] == 0.5 and not bool(out.enabled[0, 0])
    later, _ = add_node(base, torch.ones(1, dtype=torch.bool), cfg, table, torch.Generator().manual_seed(0))
    assert int(later.canonical().node_id[0, 3]) == 4            # a later generation: a new node


# ---------------------------------------------------------------------------- phenotypes
def evolved(generations=8, seed=3, **changes):
    cfg = load_config(XOR).replace(pop_size=60, no_fitness_termination=True, **changes)
    neat = NEAT(cfg, seed=seed)
    neat.run(xor_fitness, generations=generations)
    return neat


def test_batched_evaluation_equals_member_by_member_graphnet_evaluation():
    neat = evolved(12, node_add_prob=0.5, conn_add_prob=0.5, node_delete_prob=0.0, conn_delete_prob=0.0)
    pop = neat.phenotypes()
    assert int(neat.population.n_hidden(3).max()) >= 2
    x = torch.rand(16, 2)
    with torch.no_grad():
        batched = pop(x)
        members = range(0, len(pop), 3)  # every third member: building GraphNets one by one is slow
        single = torch.stack([pop.to_net(i)(x) for i in members])
    torch.testing.assert_close(batched[list(members)], single)


def test_phenotypes_taken_unchecked_pass_every_graphbatch_check_and_run_the_same():
    # phenotypes() hands its tensors to GraphBatch with validate=False; the checked constructor
    # accepts the same tensors (NEAT's invariants hold) and computes the same outputs
    from neuroplastic.core.batch import GraphBatch
    neat = evolved(15, node_add_prob=0.5, conn_add_prob=0.5)
    pop = neat.phenotypes()
    checked = GraphBatch(pop.n_in, pop.n_out, pop.src, pop.dst, pop.weight, pop.edge_alive, pop.bias,
                         pop.activation, pop.neuron_alive, mode="dag")
    x = torch.rand(8, 2)
    with torch.no_grad():
        assert torch.equal(pop(x), checked(x))
    assert torch.equal(pop.levels(), checked.levels())


@pytest.mark.parametrize("n_nodes", [3, 12, 13, 40])
def test_node_slots_by_counting_equal_the_binary_search(n_nodes):
    # Genomes.slots counts smaller keys for narrow rows and searches wide ones: both are a left search
    g = torch.Generator().manual_seed(n_nodes)
    P = 50
    ids = torch.rand(P, n_nodes, generator=g).argsort(1)[:, :n_nodes] * 7  # distinct ids a row
    ids = torch.where(torch.rand(P, n_nodes, generator=g) < 0.3, -1, ids)
    ids = torch.where(ids >= 0, ids, torch.iinfo(torch.long).max).sort(1).values
    node_id = torch.where(ids == torch.iinfo(torch.long).max, -1, ids)
    pop = Genomes(torch.zeros(P, 1, dtype=torch.long), torch.zeros(P, 1, dtype=torch.long),
                  torch.zeros(P, 1, dtype=torch.long), torch.zeros(P, 1), torch.ones(P, 1, dtype=torch.bool),
                  node_id, torch.zeros(P, n_nodes), torch.ones(P, n_nodes), torch.zeros(P, n_nodes, dtype=torch.long))
    query = torch.where(torch.rand(P, 30, generator=g) < 0.5,
                        node_id.clamp(min=0).gather(1, torch.randint(n_nodes, (P, 30), generator=g)),
                        torch.randint(7 * n_nodes, (P, 30), generator=g))
    key = torch.where(node_id >= 0, node_id, -1).cummax(1).values
    expected = torch.searchsorted(key, query).clamp(max=n_nodes - 1)
    assert torch.equal(pop.slots(query), expected)


def test_phenotype_computes_neat_python_node_semantics():
    # out = sigmoid(5 * (bias + response * sum w x)) with neat-python's sigmoid slope
    g = Genomes(innov=torch.tensor([[0, 1]]), src=torch.tensor([[0, 1]]), dst=torch.tensor([[2, 2]]),
                weight=torch.tensor([[0.7, -1.3]]), enabled=torch.tensor([[True, True]]),
                node_id=torch.arange(3)[None], bias=torch.tensor([[0.0, 0.0, 0.4]]),
                response=torch.tensor([[1.0, 1.0, 0.5]]), act=torch.zeros(1, 3, dtype=torch.long))
    x = torch.tensor([[1.0, 0.5]])
    want = torch.sigmoid(torch.tensor(5 * (0.4 + 0.5 * (0.7 * 1.0 - 1.3 * 0.5))))
    with torch.no_grad():
        assert phenotypes(g, 2, 1)(x).item() == pytest.approx(want.item(), rel=1e-6)


@pytest.fixture(scope="module")
def xor_run():
    neat = NEAT(XOR, seed=XOR_SEED)
    best = neat.run(xor_fitness, generations=100)
    return neat, best


XOR_SEED = 0


def test_neat_solves_xor_within_100_generations_on_a_fixed_seed(xor_run):
    neat, _ = xor_run
    assert neat.solved and neat.best_fitness >= 3.9
    assert len(neat.history) <= 100 and neat.history[-1]["solved"]
    assert set(neat.history[0]) >= {"best_fitness", "mean_fitness", "species", "mean_hidden", "mean_edges",
                                   "evaluations", "wall_s"}


def test_best_genome_is_exported_as_a_graphnet_with_the_members_outputs(xor_run):
    neat, best = xor_run
    assert isinstance(best, npl.GraphNet)
    x, _ = parity_table(2)
    with torch.no_grad():
        member = phenotypes(neat.best_genome, 2, 1)(x)[0]
        torch.testing.assert_close(best(x), member)
        assert 4 - (best(x) - x.sum(1, keepdim=True) % 2).pow(2).sum().item() == pytest.approx(neat.best_fitness)


def test_same_seed_gives_the_same_numbers():
    a, b = evolved(6, seed=5), evolved(6, seed=5)
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in a.history]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in b.history]
    assert torch.equal(a.population.weight, b.population.weight)


def test_checkpoint_resume_equals_an_uninterrupted_run(tmp_path):
    cfg = load_config(XOR).replace(pop_size=50, no_fitness_termination=True)
    whole = NEAT(cfg, seed=2)
    whole.run(xor_fitness, generations=10)
    part = NEAT(cfg, seed=2)
    part.run(xor_fitness, generations=4, checkpoint=tmp_path / "neat.ckpt", checkpoint_every=2)
    resumed = NEAT.load(tmp_path / "neat.ckpt")
    assert resumed.generation == 4
    resumed.run(xor_fitness, generations=6)
    strip = lambda h: [{k: v for k, v in r.items() if k != "wall_s"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(whole.history)
    for name in Genomes.CONN + Genomes.NODE:
        assert torch.equal(getattr(resumed.population, name), getattr(whole.population, name))
    assert torch.equal(resumed.species.member, whole.species.member)


def test_evolution_builds_no_autograd_graph():
    seen = []

    def fitness(pop):
        seen.append(torch.is_grad_enabled())
        assert not pop.weight.requires_grad and pop.weight.grad_fn is None
        return xor_fitness(pop)

    neat = evolved(0)
    neat.run(fitness, generations=4)
    assert seen and not any(seen)
    tensors = list(neat.population.state().values()) + [t for t in neat.species.state().values()
                                                        if torch.is_tensor(t)]
    tensors += list(neat.species.reps.state().values()) + [neat.innovations.keys]
    assert all(not t.requires_grad and t.grad_fn is None for t in tensors)


def test_fitness_of_the_wrong_shape_or_not_finite_is_a_config_error():
    neat = NEAT({"pop_size": 10}, seed=0)
    with pytest.raises(ConfigError, match=r"expected \(10,\)"):
        neat.run(lambda pop: torch.zeros(3), generations=1)
    with pytest.raises(ConfigError, match="must be finite"):
        neat.run(lambda pop: torch.full((len(pop),), float("nan")), generations=1)


def test_cartpole_through_vector_envs_runs_and_scores_the_population():
    cfg = {"pop_size": 12, "num_inputs": 4, "num_outputs": 2, "fitness_threshold": 500.0}
    neat = NEAT(cfg, seed=0)
    best = neat.run_env("CartPole-v1", episodes=2, generations=2, max_steps=60)
    assert isinstance(best, npl.GraphNet) and len(neat.history) == 2
    assert 1 <= neat.history[0]["best_fitness"] <= 60
    with pytest.raises(ConfigError, match="num_inputs = 4"):
        NEAT({"pop_size": 4}, seed=0).run_env("CartPole-v1", generations=1)


def test_env_fitness_steps_only_running_episodes_and_equals_one_env_per_episode():
    import gymnasium as gym
    import numpy as np

    from neuroplastic.evolve.neat.envs import EnvFitness
    pop = NEAT({"pop_size": 3, "num_inputs": 4, "num_outputs": 2}, seed=1).phenotypes()
    fitness = EnvFitness("CartPole-v1", episodes=2, max_steps=200, seed=5)
    stepped = []
    returns = fitness.returns(pop, first_seed=5)
    for env in fitness._env.envs:  # the steps each copy took
        stepped.append(env.get_wrapper_attr("_elapsed_steps"))
    fitness.close()
    want, lengths = np.zeros((3, 2)), []
    for p in range(3):
        for b in range(2):
            env = gym.make("CartPole-v1")
            obs, _ = env.reset(seed=5 + b)
            for t in range(200):
                with torch.no_grad():
                    y = pop(torch.as_tensor(obs, dtype=torch.float32).expand(3, 1, 4))[p, 0]
                obs, reward, terminated, truncated, _ = env.step(int(y.argmax()))
                want[p, b] += reward
                if terminated or truncated:
                    break
            lengths.append(t + 1)
    np.testing.assert_array_equal(returns, want)
    assert stepped == lengths and len(set(lengths)) > 1  # a finished episode's copy was not stepped on


def test_history_is_plain_data():
    json.dumps(evolved(2).history)


def test_parity_fitness_is_the_truth_table_error():
    x, y = parity_table(3)
    assert x.shape == (8, 3) and y.squeeze(1).tolist() == [0, 1, 1, 0, 1, 0, 0, 1]
    pop = NEAT({"num_inputs": 3, "pop_size": 5}, seed=0).phenotypes()
    with torch.no_grad():
        want = 8 - (pop(x) - y).pow(2).sum((1, 2))
    torch.testing.assert_close(parity_fitness(3)(pop), want)


def test_paper_xor_fitness_and_its_sign_test():
    x, y = parity_table(2)
    pop = NEAT({"pop_size": 5}, seed=0).phenotypes()
    fitness = paper_xor_fitness()
    with torch.no_grad():
        out = pop(x)
        torch.testing.assert_close(fitness(pop), (4 - (out - y).abs().sum((1, 2))) ** 2)
    assert fitness.solved.tolist() == ((out > 0.5).float() == y).all(2).all(1).tolist()


def test_elitism_only_for_species_of_at_least_elitism_min_species_size():
    cfg = load_config({"elitism": 1, "elitism_min_species_size": 6})
    member = torch.tensor([0] * 6 + [1] * 3)              # species 0 has 6 members, species 1 has 3
    fitness = torch.arange(9, dtype=torch.float64)
    _, _, elite = plan_offspring(fitness, member, torch.tensor([6, 3]), cfg, torch.Generator().manual_seed(0))
    assert elite.tolist() == [True] + [False] * 8


@pytest.mark.parametrize("argv, fragment", [
    (["run", "neat-xor", "--set", "pop_size=-1"], "pop_size=-1"),
    (["run", "neat-xor", "--set", "config='no/such.ini'"], "does not exist"),
    (["run", "neat-xor", "--set", "generations=0"], "generations=0"),
])
def test_cli_bad_neat_input_is_exit_2_and_one_line(argv, fragment, tmp_path, capsys):
    from neuroplastic.cli import main
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err


def test_cli_bad_neat_ini_is_exit_2_and_one_line(tmp_path, capsys):
    from neuroplastic.cli import main
    bad = tmp_path / "bad.ini"
    bad.write_text(XOR.read_text().replace("pop_size              = 150", "pop_size = 0"))
    assert main(["run", "neat-xor", "--set", f"config='{bad}'", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pop_size=0" in err


# ---------------------------------------------------------------------------- NEAT 1.2.1's choices
def test_tuned_paper_config_solves_xor_by_the_papers_test_on_a_fixed_seed():
    # xor-paper-tuned.ini, seed 0: solved in generation 16 (docs/results/gradient-free/neat-xor-paper)
    cfg = load_config(CONFIGS / "xor-paper-tuned.ini").replace(no_fitness_termination=True)
    neat, fitness = NEAT(cfg, seed=0), paper_xor_fitness()
    for generation in range(40):
        neat.step(fitness)
        if fitness.solved.any():
            break
    assert fitness.solved.any() and generation <= 30


def test_structural_excludes_attributes_leaves_a_structural_childs_weights_alone():
    cfg = load_config(XOR).replace(node_add_prob=1.0, conn_add_prob=0.0, node_delete_prob=0.0,
                                   conn_delete_prob=0.0, weight_mutate_rate=0.9, bias_mutate_rate=0.9,
                                   structural_excludes_attributes=True)
    neat = NEAT(cfg.replace(pop_size=8), seed=0)
    before = neat.population
    after = mutate(before.take(torch.arange(8)), torch.ones(8, dtype=torch.bool), cfg, neat.innovations,
                   torch.Generator().manual_seed(1))
    assert (after.n_hidden(cfg.n_fixed) == 1).all()
    old = {(int(i), float(w)) for i, w in zip(before.innov[0], before.weight[0]) if i >= 0}
    new = {(int(i), float(w)) for i, w in zip(after.innov[0], after.weight[0]) if i >= 0}
    assert old <= new  # every old gene keeps its weight
    changed = mutate(before.take(torch.arange(8)), torch.ones(8, dtype=torch.bool),
                     cfg.replace(structural_excludes_attributes=False), neat.innovations,
                     torch.Generator().manual_seed(1))
    assert not old <= {(int(i), float(w)) for i, w in zip(changed.innov[0], changed.weight[0]) if i >= 0}


def test_crossover_average_prob_one_takes_the_mean_of_matching_weights():
    a = genome([1, 2, 3], [1.0, 2.0, 3.0])
    b = genome([1, 3, 4], [3.0, 5.0, 7.0])
    child = crossover(a, b, torch.Generator().manual_seed(0), average_prob=1.0)
    assert child.weight[0].tolist() == [2.0, 2.0, 4.0]  # genes 1 and 3 matched, 2 from the fitter a


def test_a_population_below_min_species_size_is_refused_before_neat_python_runs(tmp_path, capsys):
    pytest.importorskip("neat")
    from neuroplastic.cli import main
    args = ["run", "neat-xor", "--quick", "--set", "pop_size=1", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(args) == 2
    assert "below the config's min_species_size" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("variant", ["neuroplastic", "neat-python"])
def test_a_threshold_met_in_training_ends_the_run_only_once_validation_confirms_it(tmp_path, variant):
    if variant == "neat-python":
        pytest.importorskip("neat")
    from neuroplastic.experiments import get_experiment
    ini = tmp_path / "low-threshold.ini"  # every generation's best meets it
    ini.write_text((CONFIGS / "cartpole.ini").read_text().replace("fitness_threshold     = 475",
                                                                  "fitness_threshold     = 1"))
    exp = get_experiment("neat-cartpole")
    base = {"config": str(ini), "pop_size": 10, "generations": 3, "episodes": 1, "max_steps": 30,
            "eval_episodes": 2, "validate_episodes": 2}
    job = {"task": "CartPole-v1", "variant": variant, "seed": 0}
    never = exp.run_job(job, exp.config(False, False, {**base, "validate_threshold": 1e9}), tmp_path)
    assert not never["solved"] and never["generations"] == 3 and never["validations"] == 3
    assert never["validation_episodes"] == 6 and never["validation_return"] is not None
    first = exp.run_job(job, exp.config(False, False, {**base, "validate_threshold": -1}), tmp_path)
    assert first["solved"] and first["generations"] == 0 and first["validations"] == 1


@pytest.mark.parametrize("variant", ["neuroplastic", "neat-python"])
def test_validation_waits_for_the_fitness_criterion_not_the_best_genome(tmp_path, variant):
    if variant == "neat-python":
        pytest.importorskip("neat")
    from neuroplastic.experiments import get_experiment
    ini = tmp_path / "mean-criterion.ini"  # the best genome passes 1 at once, the mean of all never 1e6
    ini.write_text((CONFIGS / "cartpole.ini").read_text().replace("fitness_threshold     = 475",
                                                                  "fitness_threshold     = 1000000")
                   .replace("fitness_criterion     = max", "fitness_criterion     = mean"))
    exp = get_experiment("neat-cartpole")
    config = exp.config(False, False, {"config": str(ini), "pop_size": 10, "generations": 2, "episodes": 1,
                                       "max_steps": 30, "eval_episodes": 2, "validate_episodes": 2,
                                       "validate_threshold": -1})
    metrics = exp.run_job({"task": "CartPole-v1", "variant": variant, "seed": 0}, config, tmp_path)
    assert not metrics["solved"] and metrics["validations"] == 0


def test_training_validation_and_held_out_seeds_may_not_overlap():
    from neuroplastic.experiments import get_experiment
    exp = get_experiment("neat-lunarlander")
    with pytest.raises(ConfigError, match="into the validation episodes"):
        exp.config(False, False, {"episodes": 20, "reference": False})  # 300 x 20 training episodes
    with pytest.raises(ConfigError, match="held-out episodes"):
        exp.config(False, False, {"validate_episodes": 6000, "reference": False})
    with pytest.raises(ConfigError, match="into the held-out episodes"):
        get_experiment("neat-cartpole").config(False, False, {"generations": 4000, "reference": False})


def _minimal_ini() -> str:  # complete for us (defaults), not for neat-python
    return "[NEAT]\npop_size = 10\nfitness_threshold = 100\n[DefaultGenome]\nnum_inputs = 4\nnum_outputs = 2\n"


def _excess_ini() -> str:  # a key of ours that neat-python ignores
    text = XOR.read_text().replace("compatibility_weight_coefficient   = 0.5", "compatibility_weight_"
                                   "coefficient = 0.5\ncompatibility_excess_coefficient = 2.0")
    assert "compatibility_excess_coefficient = 2.0" in text
    return text


@pytest.mark.parametrize("experiment, ini_text, message", [
    ("neat-cartpole", _minimal_ini, "neat-python cannot read .*fitness_criterion"),
    ("neat-xor", _excess_ini, "neat-python has no excess coefficient"),
])
def test_a_file_neat_python_cannot_run_alike_is_refused_before_any_job(tmp_path, experiment, ini_text, message):
    pytest.importorskip("neat")
    from neuroplastic.experiments import get_experiment
    ini = tmp_path / "file.ini"
    ini.write_text(ini_text())
    exp = get_experiment(experiment)
    with pytest.raises(ConfigError, match=message):
        exp.config(True, False, {"config": str(ini)})
    assert exp.config(True, False, {"config": str(ini), "reference": False})["config"] == str(ini)


def test_neat_python_failing_mid_run_is_one_line_and_keeps_ours_rows(tmp_path, capsys):
    pytest.importorskip("neat")
    from neuroplastic.cli import main
    ini = tmp_path / "tight.ini"  # 0.3 splits 150 genomes into more species than 150 / 2 can keep
    ini.write_text(XOR.read_text().replace("compatibility_threshold = 3.0", "compatibility_threshold = 0.3"))
    assert "compatibility_threshold = 0.3" in ini.read_text()
    out = tmp_path / "run"
    args = ["run", "neat-xor", "--seeds", "1", "--set", f"config='{ini}'", "--set", "generations=5",
            "--out", str(out), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "neat-python failed after generation" in err and "min_species_size" in err
    assert "reference=false" in err
    assert [f.name for f in (out / "rows").iterdir()] == ["xor__neuroplastic__seed0.json"]


def test_neat_python_prints_no_warning_per_genome_for_a_bare_full_with_hidden_nodes(tmp_path, capfd):
    pytest.importorskip("neat")
    import neat

    from neuroplastic.experiments.neat_reference import load
    ini = tmp_path / "hidden.ini"  # xor.ini's initial_connection is the bare `full`
    ini.write_text(XOR.read_text().replace("num_hidden              = 0", "num_hidden              = 2"))
    config = load(str(ini))
    neat.Population(config)
    assert config.genome_config.initial_connection == "full_nodirect"  # what neat-python does for `full`
    assert "Warning" not in capfd.readouterr().err


def test_env_fitness_refuses_a_missing_vector_implementation_and_an_endless_env():
    import gymnasium as gym

    from neuroplastic.evolve.neat.envs import EnvFitness
    with pytest.raises(ConfigError, match="no numpy vector implementation"):
        EnvFitness("Acrobot-v1", vectorization="vector")
    gym.register("NoTimeLimitCartPole-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv")
    with pytest.raises(ConfigError, match="no time limit"):
        EnvFitness("NoTimeLimitCartPole-v0")
    assert EnvFitness("NoTimeLimitCartPole-v0", max_steps=10).max_steps == 10


def test_a_folder_written_before_validation_existed_is_reused_and_every_changed_key_is_named(tmp_path, capsys):
    from neuroplastic.cli import main
    out = tmp_path / "run"
    args = ["run", "neat-cartpole", "--quick", "--set", "reference=false", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    saved = json.loads((out / "config.json").read_text())
    for key in ("validate_episodes", "validate_threshold"):
        del saved[key]
    (out / "config.json").write_text(json.dumps(saved))
    assert main(args) == 0  # the same settings as then: the finished row is kept
    capsys.readouterr()
    assert main(args + ["--set", "generations=4", "--set", "episodes=3"]) == 2
    err = capsys.readouterr().err
    assert "episodes: 2 -> 3" in err and "generations: 3 -> 4" in err


class _OffsetActions:
    """A gymnasium env whose actions are Discrete(2, start=5): action 6 earns 1 a step."""

    def __new__(cls):
        import gymnasium as gym
        import numpy as np

        class Env(gym.Env):
            observation_space = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
            action_space = gym.spaces.Discrete(2, start=5)

            def reset(self, seed=None, options=None):
                super().reset(seed=seed)
                self.t = 0
                return np.ones(1, dtype=np.float32), {}

            def step(self, action):
                assert action in (5, 6), f"bad action {action}"
                self.t += 1
                return np.ones(1, dtype=np.float32), float(action == 6), self.t >= 5, False, {}
        return Env()


def test_env_fitness_offsets_argmax_by_a_discrete_spaces_start_in_ours_and_neat_python():
    import gymnasium as gym

    from neuroplastic.evolve.neat.envs import EnvFitness
    gym.register("OffsetActions-v0", entry_point=_OffsetActions, max_episode_steps=10)
    net = npl.GraphNet(1, 2, connect="none")
    with torch.no_grad():  # output 1 (action 6) always wins
        net.bias[2] = 1.0
    fitness = EnvFitness("OffsetActions-v0", episodes=2)
    assert fitness.returns(npl.GraphBatch.from_nets([net]), 0).tolist() == [[5.0, 5.0]]
    fitness.close()
    pytest.importorskip("neat")
    from neuroplastic.experiments.neat_reference import env_eval

    class Net:
        def activate(self, obs):
            return [0.0, 1.0]
    _, episode_return, _, env = env_eval("OffsetActions-v0", 0, 1, 10)
    assert episode_return(Net(), 0) == 5.0
    env.close()


def test_run_on_a_solved_neat_returns_its_best_at_once_and_adds_no_generation():
    cfg = load_config(CONFIGS / "xor.ini").replace(pop_size=20, fitness_threshold=-1e9)
    neat = NEAT(cfg, seed=0)
    neat.run(xor_fitness, generations=5)
    assert neat.solved and len(neat.history) == 1
    again = neat.run(xor_fitness, generations=5)
    assert len(neat.history) == 1 and again.n_neurons == neat.best_net().n_neurons


def test_neat_refuses_a_seed_torch_cannot_take_and_an_env_id_that_is_no_string():
    cfg = load_config(CONFIGS / "xor.ini").replace(pop_size=10)
    with pytest.raises(ConfigError, match="seed="):
        NEAT(cfg, seed=2**70)
    with pytest.raises(ConfigError, match="gymnasium id"):
        NEAT(cfg, seed=0).run_env(123)


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.pop("rng"), "field 'rng' is missing"),
    (lambda s: s["species"].update(member=None), "damaged NEAT state"),
    (lambda s: s["population"].update(weight=s["population"]["weight"][:, :1]), "differ in shape"),
    (lambda s: s.update(generation="abc"), "generation='abc'"),
    (lambda s: s["config"].update(pop_size=7), "genomes for pop_size=7"),
    (lambda s: s["config"].update(num_inputs=5), "5 inputs"),
    (lambda s: s["population"].update(weight=s["population"]["weight"].double()), "weight is not of the genome's"),
    (lambda s: s["population"].update(src=s["population"]["src"].int()), "src is not of the genome's dtype"),
    (lambda s: s["species"].update(member=s["species"]["member"].float()), "species' member is not"),
    (lambda s: s["species"].update(best=s["species"]["best"][:0]), "species' best is not"),
    (lambda s: s["innovations"].update(next_innovation=0), "innovation table"),
    (lambda s: s["innovations"].update(keys=s["innovations"]["keys"][:, None]), "innovation table"),
    (lambda s: s["innovations"].update(next_node=0), "next node id 0 is not above the node ids in use"),
    (lambda s: s["innovations"]["numbers"].copy_(s["innovations"]["numbers"].roll(1)),
     "the table's number of another"),
    (lambda s: s["species"]["last_improved"].fill_(99), "last improved after generation 2"),
])
def test_neat_load_names_a_damaged_field_of_a_checkpoint_whose_checksum_is_good(tmp_path, damage, message):
    from neuroplastic.core.checkpoint import save
    neat = NEAT(load_config(CONFIGS / "xor.ini").replace(pop_size=30), seed=0)
    neat.run(xor_fitness, generations=2)
    state = neat.state_dict()
    damage(state)
    save(tmp_path / "bad.ckpt", None, extra={"neat": state})
    with pytest.raises(npl.CheckpointError, match=message):
        NEAT.load(tmp_path / "bad.ckpt")


def _self_loop(state):
    """A gene into a hidden node made to start there too: a cycle of one node."""
    pop = state["population"]
    row, slot = (int(i) for i in ((pop["dst"] >= 3) & (pop["innov"] >= 0)).nonzero()[0])
    pop["src"][row, slot] = pop["dst"][row, slot]


def _swap_first_genes(state):
    innov = state["population"]["innov"]
    innov[0, 0], innov[0, 1] = int(innov[0, 1]), int(innov[0, 0])


@pytest.mark.parametrize("damage, message", [
    (lambda s: s["population"]["dst"].__setitem__((0, 0), 999), "gene .* has dst 999, which is none of its nodes"),
    (lambda s: s["best_genome"]["src"].__setitem__((0, 0), 77), "best genome: .* src 77, which is none"),
    (lambda s: s["population"]["dst"].__setitem__((0, 0), 0), "input neurons take no incoming edges"),
    (_self_loop, "have a cycle"),
    (_swap_first_genes, "not in ascending order"),
    (lambda s: s["population"]["act"].fill_(99), "an activation id is outside 0..3"),
    (lambda s: s["population"]["weight"].__setitem__((0, 0), float("nan")), "a weight is not finite"),
    (lambda s: s.update(best_fitness=float("nan")), "best_fitness=nan is not a fitness"),
    (lambda s: s.update(solved="no"), "solved='no' is not True or False"),
])
def test_neat_load_refuses_tampered_genes_at_load_not_generations_later(tmp_path, damage, message):
    from neuroplastic.core.checkpoint import save
    neat = NEAT(load_config(CONFIGS / "xor.ini").replace(pop_size=30), seed=0)
    neat.run(xor_fitness, generations=20)  # seed 0 holds hidden nodes by then
    neat.save(tmp_path / "good.ckpt")
    assert NEAT.load(tmp_path / "good.ckpt").generation == neat.generation
    state = neat.state_dict()
    damage(state)
    save(tmp_path / "bad.ckpt", None, extra={"neat": state})
    with pytest.raises(npl.CheckpointError, match=message):
        NEAT.load(tmp_path / "bad.ckpt")


def test_a_scalar_complex_or_bool_fitness_and_xor_on_two_outputs_are_refused_clearly():
    neat = NEAT(load_config(CONFIGS / "xor.ini").replace(pop_size=10), seed=0)
    for fitness, message in ((lambda pop: torch.tensor(1.0), "returned one number"),
                             (lambda pop: torch.zeros(len(pop), dtype=torch.complex64), "complex64 values"),
                             (lambda pop: torch.ones(len(pop), dtype=torch.bool), "bool values")):
        with pytest.raises(ConfigError, match=message):
            neat.run(fitness, generations=1)
    two = NEAT(load_config(CONFIGS / "xor.ini").replace(pop_size=10, num_outputs=2), seed=0)
    with pytest.raises(ConfigError, match="XOR is scored on one output; the genomes have num_outputs = 2"):
        two.run(xor_fitness, generations=1)


def _stop_after_the_second_checkpoint(monkeypatch, owner, name: str) -> list:
    """`owner.name` (a checkpoint save) patched to record each NEAT checkpoint's generation and to
    raise KeyboardInterrupt right after generation 2's; returns the list it records into."""
    real_save, saved = getattr(owner, name), []

    def save_then_stop(path, net, **kwargs):
        real_save(path, net, **kwargs)
        if "neat" in kwargs.get("extra", {}):
            saved.append(kwargs["step"])
            if kwargs["step"] == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(owner, name, save_then_stop)
    return saved


def test_an_interrupted_validated_neat_job_resumes_to_the_same_numbers_and_validations(tmp_path, monkeypatch):
    import neuroplastic.core.checkpoint as checkpoint
    from neuroplastic.experiments import get_experiment
    ini = tmp_path / "low-threshold.ini"  # every generation's best meets it and is validated
    ini.write_text((CONFIGS / "cartpole.ini").read_text().replace("fitness_threshold     = 475",
                                                                  "fitness_threshold     = 1"))
    exp = get_experiment("neat-cartpole")
    config = exp.config(False, False, {"config": str(ini), "pop_size": 10, "generations": 4, "episodes": 1,
                                       "max_steps": 30, "eval_episodes": 2, "validate_episodes": 2,
                                       "validate_threshold": 1e9})
    job = {"task": "CartPole-v1", "variant": "neuroplastic", "seed": 0}
    whole = exp.run_job(job, config, tmp_path / "whole")
    saved = _stop_after_the_second_checkpoint(monkeypatch, checkpoint, "save")
    with pytest.raises(KeyboardInterrupt):
        exp.run_job(job, config, tmp_path / "cut")
    saved.clear()
    resumed = exp.run_job(job, config, tmp_path / "cut")
    assert saved == [3, 4]  # generations 3 and 4 were played again, not 1 and 2
    for key in ("validations", "validation_return", "return_mean", "best_fitness", "generations"):
        assert resumed[key] == whole[key]
    assert [r["best_fitness"] for r in resumed["history"]] == [r["best_fitness"] for r in whole["history"]]
    assert not list((tmp_path / "cut" / "partial").glob("*.ckpt"))


def test_an_interrupted_unvalidated_neat_env_job_resumes_from_its_checkpoint_to_the_same_numbers(tmp_path,
                                                                                                 monkeypatch):
    import neuroplastic.evolve.neat.neat as neat_module
    from neuroplastic.experiments import get_experiment
    exp = get_experiment("neat-cartpole")
    config = exp.config(False, False, {"pop_size": 10, "generations": 4, "episodes": 1, "max_steps": 30,
                                       "eval_episodes": 2, "validate_episodes": 0})
    job = {"task": "CartPole-v1", "variant": "neuroplastic", "seed": 0}
    whole = exp.run_job(job, config, tmp_path / "whole")
    saved = _stop_after_the_second_checkpoint(monkeypatch, neat_module, "save_checkpoint")
    with pytest.raises(KeyboardInterrupt):
        exp.run_job(job, config, tmp_path / "cut")
    assert saved == [1, 2] and len(list((tmp_path / "cut" / "partial").glob("*.ckpt"))) == 1
    saved.clear()
    resumed = exp.run_job(job, config, tmp_path / "cut")
    assert saved == [3, 4]  # generations 3 and 4 were played again, not 1 and 2
    for key in ("return_mean", "best_fitness", "generations", "evaluations"):
        assert resumed[key] == whole[key]
    assert [r["best_fitness"] for r in resumed["history"]] == [r["best_fitness"] for r in whole["history"]]
    assert not list((tmp_path / "cut" / "partial").glob("*.ckpt"))


def test_output_activation_gives_the_outputs_their_own_activation_through_activation_mutations():
    from neuroplastic.evolve.neat.genome import ACTIVATION_LIST
    cfg = load_config(CONFIGS / "xor.ini").replace(pop_size=30, output_activation="identity",
                                                   activation_options=("sigmoid", "tanh"), activation_mutate_rate=1.0,
                                                   node_add_prob=0.9)
    neat = NEAT(cfg, seed=0)
    for _ in range(4):
        neat.step(xor_fitness)
    act, node_id = neat.population.act, neat.population.node_id
    outputs, hidden = act[:, cfg.num_inputs:cfg.n_fixed], act[node_id >= cfg.n_fixed]
    assert (outputs == ACTIVATION_LIST.index("identity")).all()
    assert len(hidden) and not (hidden == ACTIVATION_LIST.index("identity")).any()  # hidden nodes still mutate


def test_neat_on_a_box_env_warns_when_sigmoid_outputs_cannot_reach_its_bounds_and_not_with_identity():
    import warnings
    cfg = load_config(CONFIGS / "cartpole.ini").replace(num_inputs=3, num_outputs=1, pop_size=6)
    with pytest.warns(UserWarning, match=r"Pendulum-v1's actions span \[-2, 2\] but sigmoid outputs only"):
        NEAT(cfg, seed=0).run_env("Pendulum-v1", generations=1, max_steps=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        best = NEAT(cfg.replace(output_activation="identity"), seed=0).run_env("Pendulum-v1", generations=1,
                                                                                max_steps=5)
    assert best.output_activation == "identity"


def test_output_activation_is_refused_while_neat_python_runs_beside_ours(tmp_path):
    pytest.importorskip("neat")
    from neuroplastic.experiments import get_experiment
    ini = tmp_path / "identity-outputs.ini"
    ini.write_text((CONFIGS / "xor.ini").read_text() + "\n[Neuroplastic]\noutput_activation = identity\n")
    with pytest.raises(ConfigError, match="output_activation='identity' is ours"):
        get_experiment("neat-xor").config(False, False, {"config": str(ini)})
    assert get_experiment("neat-xor").config(False, False, {"config": str(ini), "reference": False})


def test_random_output_activations_that_cannot_reach_a_box_envs_bounds_are_warned_about():
    cfg = load_config(CONFIGS / "cartpole.ini").replace(num_inputs=3, num_outputs=1, pop_size=6,
                                                        activation_default="random",
                                                        activation_options=("sigmoid",))
    with pytest.warns(UserWarning, match="sigmoid outputs only"):
        NEAT(cfg, seed=0).run_env("Pendulum-v1", generations=1, max_steps=5)


def test_a_genome_that_mixes_activations_comes_back_as_a_graphnet_with_each_nodes_own(tmp_path):
    cfg = load_config(CONFIGS / "xor.ini").replace(pop_size=40, activation_options=("sigmoid", "tanh", "relu"),
                                                   activation_mutate_rate=0.5, node_add_prob=0.9)
    neat = NEAT(cfg, seed=0)
    best = neat.run(xor_fitness, generations=6)
    assert isinstance(best, npl.GraphNet) and best.n_hidden >= 2
    hidden = {a for i, a in best.neuron_activations().items() if i >= cfg.n_fixed}
    assert len(hidden) > 1  # this seed's best genome mixes them
    member = phenotypes(neat.best_genome, cfg.num_inputs, cfg.num_outputs)
    x = parity_table(2)[0]
    torch.testing.assert_close(best(x), member(x)[0])
    torch.testing.assert_close(best.to_module()(x), best(x))
    npl.save(tmp_path / "best.ckpt", best)
    torch.testing.assert_close(npl.load(tmp_path / "best.ckpt")["net"](x), best(x))


def test_add_connection_between_hidden_nodes_never_closes_a_cycle_or_repeats_a_pair():
    # many hidden nodes and a new connection in every child: most picks join two hidden nodes,
    # the only pairs that can close a cycle; every genome must stay one NEAT accepts at load
    # (every gene enabled: no cycle, no duplicate pair, no gene into an input or out of an output)
    from neuroplastic.evolve.neat.neat import _genes_problem
    cfg = load_config(CONFIGS / "parity3.ini").replace(pop_size=200, conn_add_prob=1.0, node_add_prob=0.6,
                                                       conn_delete_prob=0.0, node_delete_prob=0.0,
                                                       no_fitness_termination=True)
    neat = NEAT(cfg, seed=3)
    fitness = parity_fitness(3)
    for _ in range(12):
        neat.step(fitness)
        assert _genes_problem(neat.population, cfg) is None
    hidden = neat.population.n_hidden(cfg.n_fixed)
    assert float(hidden.float().mean()) > 3  # the cycle search had hidden pairs to look at
