"""The self-editing controller (neuroplastic.evolve.self_editing) and the array form of
GraphBatch edits it applies its commands with."""
import json

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import neuroplastic as npl
from neuroplastic.cli import main
from neuroplastic.core.batch import GraphBatch
from neuroplastic.errors import ConfigError, CycleError, EditError
from neuroplastic.evolve.parallel import PopulationFitness
from neuroplastic.evolve.self_editing import HEADS, EditorLayout, SelfEditingControllers, SelfEditingPopulation


def edges(net) -> set:
    return {(s, d, round(w, 5)) for s, d, w in zip(*(t.tolist() for t in net.edges()))}


def commanding(c: SelfEditingControllers, heads=("split", "remove", "add"), seed=0) -> torch.Tensor:
    """A candidate whose structural heads always fire (their constant is large)."""
    torch.manual_seed(seed)
    cand = torch.randn(c.n_params) * 0.3
    at, layout = 0, c.layout
    for name, shape in layout.shapes.items():
        k = int(np.prod(shape))
        if name == "c":
            for h in heads:
                cand[at + HEADS.index(h)] = 5.0
        at += k
    return cand


@pytest.fixture(scope="module")
def cartpole():
    c = SelfEditingControllers("CartPole-v1", episodes=2, max_steps=60, max_hidden=4, edit_every=5)
    yield c
    c.close()


def test_commands_change_the_graph_through_edits():
    for path in ("arrays", "members"):
        c = SelfEditingControllers("CartPole-v1", max_hidden=4, edit_path=path)
        cand = commanding(c).reshape(1, -1)
        with torch.no_grad():
            pop = SelfEditingPopulation(c, cand, 1)
            before = pop.batch.to_net(0)
            assert (before.n_hidden, before.n_edges) == (0, 8)  # inputs wired straight to outputs
            pop.edit()
            after = pop.batch.to_net(0)
            pop.edit()  # now the relay offers absent allowed edges (inputs -> relay -> outputs)
            third = pop.batch.to_net(0)
        c.close()
        # round 1: one split (+1 neuron, +2 -1 edges) and one removal; no absent edge is allowed
        # yet (every input already reaches every output, positions forbid the rest)
        assert after.n_hidden == 1 and after.n_edges == 8 + 1 - 1
        relay = 6
        s_in = [s for s, d, _ in edges(after) if d == relay]
        s_out = [d for s, d, _ in edges(after) if s == relay]
        assert len(s_in) == 1 and len(s_out) == 1
        assert (s_in[0], s_out[0]) not in {(s, d) for s, d, _ in edges(after)}  # the split edge is gone
        assert edges(before) != edges(after)
        assert pop.position[0, relay] == 0.5 and len(pop.history) == 2
        # round 2: split, removal and addition
        assert third.n_hidden == 2 and third.n_edges == 8 + 1 - 1 + 1


def test_both_edit_paths_build_the_same_networks():
    nets = {}
    for path in ("arrays", "members"):
        c = SelfEditingControllers("CartPole-v1", episodes=2, max_steps=80, max_hidden=3, edit_every=4, edit_path=path)
        cands = torch.stack([commanding(c, seed=s) for s in range(3)])
        returns = c.returns(cands, 0)
        nets[path] = (returns, [edges(n) for n in c.last.batch.to_nets()], c.last.batch.n_hidden.tolist())
        c.close()
    assert np.array_equal(nets["arrays"][0], nets["members"][0])
    assert nets["arrays"][1] == nets["members"][1] and nets["arrays"][2] == nets["members"][2]
    assert max(nets["arrays"][2]) > 0


def test_batched_evaluation_equals_member_by_member(cartpole):
    cands = torch.stack([commanding(cartpole, seed=s) for s in range(4)])
    together = cartpole.returns(cands, 7)
    alone = np.concatenate([cartpole.returns(cands[i:i + 1], 7) for i in range(4)])
    assert np.array_equal(together, alone)
    fitness = PopulationFitness(SelfEditingControllers, {"env_id": "CartPole-v1", "episodes": 2, "max_steps": 60,
                                                         "max_hidden": 4, "edit_every": 5})
    assert torch.allclose(fitness(cands), torch.as_tensor(cartpole.returns(cands, 0).mean(1)))
    fitness.close()


class NoGraph(TorchFunctionMode):
    """Fails on any tensor op whose result carries an autograd graph."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else [out]:
            if isinstance(t, torch.Tensor) and (t.requires_grad or t.grad_fn is not None):
                raise AssertionError(f"{func} built an autograd graph")
        return out


def test_no_autograd_graph_on_the_path(cartpole):
    cands = torch.stack([commanding(cartpole, seed=s) for s in range(2)])
    with NoGraph():
        returns = cartpole.returns(cands, 0)
    pop = cartpole.last
    assert returns.shape == (2, 2) and pop.batch.n_hidden.max() > 0
    for t in (pop.batch.weight, pop.batch.bias, pop.state):
        assert not t.requires_grad and t.grad_fn is None


def test_edit_arrays_equal_edits_op_for_op():
    torch.manual_seed(1)
    nets = [npl.GraphNet(n_in=3, n_out=2, seed=i) for i in range(5)]
    e = npl.Edits()
    e.add_neuron(between=(0, 3))
    nets[2].apply_edits(e)
    a, b = GraphBatch.from_nets(nets), GraphBatch.from_nets(nets)
    split = ([0, 2, 2, 4], [0, 1, 5, 2], [3, 4, 4, 3], [1.0, 0.5, -1.0, 2.0], [0.3, 0.2, 0.1, 0.0])
    remove = ([1, 2], [2, 0], [3, 3])
    with pytest.raises(EditError, match="member 1: edge 0 -> 3 already exists"):
        b.apply_edit_arrays(split=split, remove=remove, add=([1], [0], [3], [0.7]))
    assert all(edges(x) == edges(y) for x, y in zip(a.to_nets(), b.to_nets()))  # nothing changed
    add = ([1, 0], [2, 1], [3, 5], [0.7, -0.4])  # member 1: the edge it removed; member 0: into its relay
    sets = ([1, 3], [0, 1], [4, 3], [9.0, 1.5])
    new = b.apply_edit_arrays(split=split, remove=remove, add=add, set_weights=sets)
    per = {i: npl.Edits() for i in range(5)}
    refs = [per[m].add_neuron(between=(s, d), weight_in=wi, weight_out=wo) for m, s, d, wi, wo in zip(*split)]
    for m, s, d in zip(*remove):
        per[m].remove_edges([s], [d])
    for m, s, d, w in zip(*add):
        per[m].add_edges([s], [d], [w])
    for m, s, d, w in zip(*sets):
        per[m].set_weights([s], [d], [w])
    a.apply_edits(per)
    assert new.tolist() == [int(r) for r in refs]
    for x, y in zip(a.to_nets(), b.to_nets()):
        assert edges(x) == edges(y) and x.n_hidden == y.n_hidden
    x = torch.randn(6, 3)
    assert torch.allclose(a(x), b(x), atol=1e-6)


def test_edit_arrays_refuse_bad_commands_and_change_nothing():
    pop = GraphBatch.from_nets([npl.GraphNet(n_in=2, n_out=1, seed=0) for _ in range(2)])
    pop.apply_edit_arrays(split=([0], [0], [2], [1.0], [1.0]))  # member 0: 0 -> 3 -> 2
    before = [edges(n) for n in pop.to_nets()]
    with pytest.raises(CycleError):
        pop.apply_edit_arrays(add=([0], [3], [3], [1.0]))  # a self loop on the relay
    with pytest.raises(EditError, match="does not exist"):
        pop.apply_edit_arrays(remove=([1], [0], [1]))
    with pytest.raises(EditError, match="input neurons take no incoming edges"):
        pop.apply_edit_arrays(add=([1], [0], [1], [1.0]))
    with pytest.raises(EditError, match="member 5 is not in 0..1"):
        pop.apply_edit_arrays(remove=([5], [0], [2]))
    with pytest.raises(EditError, match="not finite"):
        pop.apply_edit_arrays(set_weights=([0], [0], [3], [float("nan")]))
    assert [edges(n) for n in pop.to_nets()] == before


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="needs a 1-D Box"):
        SelfEditingControllers("FrozenLake-v1")
    c = SelfEditingControllers("CartPole-v1", max_hidden=2)
    with pytest.raises(ConfigError, match=r"expected \(P >= 1, "):
        c.returns(torch.zeros(0, c.n_params), 0)
    c.close()
    with pytest.raises(ConfigError, match="edit_every"):
        SelfEditingControllers("CartPole-v1", edit_every=0)
    assert EditorLayout(4, 2, 8).size == c.n_params
    for argv, message in ((["--envs", "FrozenLake-v1"], "needs a 1-D Box"),
                          (["--set", "popsize=0"], "popsize"),
                          (["--set", "variants=hebb"], "variant='hebb' is not supported")):
        assert main(["run", "self-editing", "--quick", "--out", str(tmp_path / "o"), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]


def test_training_selection_and_held_out_episodes_may_not_overlap():
    from neuroplastic.experiments import get_experiment
    exp = get_experiment("self-editing")
    with pytest.raises(ConfigError, match="reach reset seed 5999, into the validation episodes"):
        exp.config(False, False, {"generations": 2000, "episodes": 3})
    with pytest.raises(ConfigError, match="select_episodes=6000 reaches the held-out episodes"):
        exp.config(False, False, {"select_episodes": 6000})
    assert exp.config(False, False, {"select_episodes": 5000})["select_episodes"] == 5000


def test_quick_experiment_writes_rows_report_and_network(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "self-editing", "--quick", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = {r["variant"]: r["metrics"] for r in results["rows"]}
    assert set(rows) == {"self-editing", "static", "neat"}
    se = rows["self-editing"]
    assert len(se["returns"]) == 5 and se["size_trace"][0]["step"] == 0
    assert rows["static"]["n_hidden"] == round(se["n_hidden"])
    assert (out / "report.md").read_text().count("self-built network") >= 1
    assert list(out.glob("net-*.png")) and list(out.glob("size-*.png"))


def test_a_twin_row_with_an_impossible_size_is_named_and_recomputed_not_trusted(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "self-editing", "--quick", "--out", str(out), "--no-progress"]
    assert main(args + ["--set", "variants=self-editing"]) == 0
    (row_path,) = (out / "rows").glob("*self-editing*.json")
    row = json.loads(row_path.read_text())
    honest = row["metrics"]["n_hidden"]
    row["metrics"]["n_hidden"] = 1e9  # a 4-1e9-2 MLP would not fit in memory
    del row["digest"]  # as a row written before rows had digests: only the size check can tell
    row_path.write_text(json.dumps(row))
    capsys.readouterr()
    assert main(args + ["--set", "variants=self-editing,static"]) == 0
    assert "n_hidden=1000000000.0 is above max_hidden=4" in capsys.readouterr().err
    rows = {r["variant"]: r["metrics"] for r in json.loads((out / "results.json").read_text())["rows"]}
    assert rows["static"]["n_hidden"] == round(honest)


def test_neat_baseline_on_an_env_without_a_goal_runs_its_budget_and_is_not_judged(tmp_path):
    out = tmp_path / "pendulum"
    assert main(["run", "self-editing", "--quick", "--envs", "Pendulum-v1", "--set", "variants=neat",
                 "--set", "generations=2", "--set", "max_steps=20", "--out", str(out), "--no-progress"]) == 0
    (row,) = json.loads((out / "results.json").read_text())["rows"]
    assert row["metrics"]["generations"] == 2 and row["metrics"]["solved"] is None
    assert "| – |" in (out / "report.md").read_text()


@pytest.fixture
def no_ray_session():
    """The ES hands candidates to a Ray session that is already up (an earlier test's --workers
    run); its workers would not see an env registered in this process."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()


def test_an_env_with_no_time_limit_of_its_own_runs_every_variant_when_max_steps_is_given(tmp_path, no_ray_session):
    import gymnasium as gym
    if "EndlessCartPole-v0" not in gym.registry:
        gym.register("EndlessCartPole-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv")
    out = tmp_path / "endless"
    assert main(["run", "self-editing", "--quick", "--envs", "EndlessCartPole-v0", "--set", "max_steps=20",
                 "--set", "generations=1", "--out", str(out), "--no-progress"]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["variant"] for r in rows} == {"self-editing", "static", "neat"}


def test_innate_weights_start_the_minimal_network_and_anchor_the_weight_command():
    c = SelfEditingControllers("CartPole-v1", episodes=1, max_steps=30, max_hidden=2, innate_weights=True)
    layout = c.layout
    assert layout.size == EditorLayout(4, 2, 8).size + 4 * 2 and list(layout.shapes)[0] == "innate"
    w0 = torch.arange(8.0).reshape(1, 4, 2) / 10 - 0.3
    cand = torch.zeros(1, layout.size)  # an editor of zeros: no structural command, score 0
    cand[0, :8] = w0.reshape(-1)
    pop = SelfEditingPopulation(c, cand, 1)
    src, dst, w = (t.tolist() for t in pop.batch.to_net(0).edges())
    assert {(s, d): round(x, 6) for s, d, x in zip(src, dst, w)} == \
        {(i, 4 + j): round(float(w0[0, i, j]), 6) for i in range(4) for j in range(2)}
    pop.edit()  # the weight head's tanh(0) = 0: every edge stays at its innate weight
    after = {(s, d): round(x, 6) for s, d, x in zip(*(t.tolist() for t in pop.batch.to_net(0).edges()))}
    assert after == {(i, 4 + j): round(float(w0[0, i, j]), 6) for i in range(4) for j in range(2)}
    c.close()


def test_editor_step_sizes_keep_sigma_for_the_innate_weights_and_scale_the_editors_own():
    with_innate = EditorLayout(4, 2, 8, innate=True).step_sizes(0.1)
    assert with_innate.shape == (EditorLayout(4, 2, 8, innate=True).size,)
    assert (with_innate[:8] == 1).all() and (with_innate[8:] == 0.1).all()
    assert (EditorLayout(4, 2, 8).step_sizes(0.1) == 0.1).all()


def test_caps_whose_editor_cannot_fit_in_memory_are_one_line_and_exit_2_before_any_job(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "self-editing", "--quick", "--no-progress", "--set", "max_hidden=100000000",
                 "--set", "variants=self-editing", "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "lower max_hidden, popsize or episodes" in capsys.readouterr().err


def test_an_interrupted_self_editing_job_resumes_from_its_last_generation_to_the_same_numbers(tmp_path, monkeypatch):
    from neuroplastic.experiments import resume
    args = ["run", "self-editing", "--quick", "--no-progress", "--set", "variants=self-editing",
            "--set", "generations=3"]
    assert main(args + ["--out", str(tmp_path / "whole")]) == 0
    saves = []
    real_save = resume.save_es

    def save_then_stop(es, path):  # the job is stopped right after its second generation's checkpoint
        real_save(es, path)
        saves.append(es.generation)
        if es.generation == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(resume, "save_es", save_then_stop)
        assert main(args + ["--out", str(tmp_path / "cut")]) == 130
    assert saves == [1, 2] and len(list((tmp_path / "cut" / "partial").glob("*.ckpt"))) == 1
    saves.clear()
    with monkeypatch.context() as m:
        m.setattr(resume, "save_es", save_then_stop)  # counts the generations the rerun plays
        assert main(args + ["--out", str(tmp_path / "cut")]) == 0
    assert saves == [3]  # only the third generation was played again
    whole, cut = (json.loads((tmp_path / d / "results.json").read_text())["rows"][0]["metrics"]
                  for d in ("whole", "cut"))
    for key in ("return_mean", "candidate", "n_hidden", "n_edges"):
        assert whole[key] == cut[key]
    assert [r["best"] for r in whole["history"]] == [r["best"] for r in cut["history"]]
    assert not list((tmp_path / "cut" / "partial").glob("*.ckpt"))


def test_population_fitness_names_a_setting_its_controllers_do_not_take():
    from neuroplastic.evolve.parallel import PopulationFitness
    with pytest.raises(ConfigError, match="SelfEditingControllers takes no episodez; it takes env_id, episodes"):
        PopulationFitness(SelfEditingControllers, {"env_id": "CartPole-v1", "episodez": 3})


def test_a_users_env_in_gymnasiums_module_form_runs_from_the_cli(tmp_path, monkeypatch, no_ray_session):
    # `--envs mymodule:MyEnv-v0`: the module registers the env when imported, as gymnasium.make reads it
    (tmp_path / "user_envs_for_test.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('UserCartPole-v0', entry_point='gymnasium.envs.classic_control.cartpole:CartPoleEnv',"
        " max_episode_steps=30)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "user"
    assert main(["run", "self-editing", "--quick", "--envs", "user_envs_for_test:UserCartPole-v0",
                 "--set", "generations=1", "--out", str(out), "--no-progress"]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["task"] for r in rows} == {"user_envs_for_test:UserCartPole-v0"}
    assert sorted(p.name for p in (out / "rows").glob("*.json"))[0].startswith("user_envs_for_test_UserCartPole-v0__")


def test_an_env_module_that_cannot_be_imported_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["run", "self-editing", "--quick", "--envs", "no_such_module_here:Env-v0",
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "its module 'no_such_module_here' cannot be imported" in err[0]


def test_an_env_module_that_raises_while_imported_is_one_line_naming_the_error(tmp_path, capsys, monkeypatch):
    (tmp_path / "broken_envs_for_test.py").write_text("x = 1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["run", "self-editing", "--quick", "--envs", "broken_envs_for_test:Env-v0",
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "importing its module 'broken_envs_for_test' raised ZeroDivisionError" in err[0]
