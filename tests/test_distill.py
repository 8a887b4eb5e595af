import gymnasium as gym
import numpy as np
import pytest
import torch

import neuroplastic as npl
from neuroplastic.tasks.teachers import cartpole_teacher

QUICK = dict(steps=2000, n_data=4000, eval_every=500, eval_episodes=5, curve_episodes=2)
# A few steps of everything: for tests of plumbing, not of learning.
TINY = dict(steps=20, n_data=40, eval_every=20, eval_episodes=1, curve_episodes=1)


class GridObsEnv(gym.Env):
    """(2, 3) Box observations; reward for action 1 iff obs[0, 0] > 0. `horizon` has no
    default, so a gymnasium.make anywhere in distill that drops env_kwargs fails loudly;
    `payload` is ignored (it carries nested kwargs through checkpoints)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, horizon, payload=None):
        self.horizon = horizon

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.obs = self.np_random.uniform(-1, 1, (2, 3)).astype(np.float32)
        return self.obs, {}

    def step(self, action):
        reward = float(int(action) == int(self.obs[0, 0] > 0))
        self.t += 1
        self.obs = self.np_random.uniform(-1, 1, (2, 3)).astype(np.float32)
        return self.obs, reward, False, self.t >= self.horizon, {}


class DictObsEnv(GridObsEnv):
    observation_space = gym.spaces.Dict({"pos": gym.spaces.Box(-1.0, 1.0, (2,), np.float32)})

    def __init__(self):
        super().__init__(horizon=5)


for _id, _entry in (("NplTest/GridObs-v0", GridObsEnv), ("NplTest/DictObs-v0", DictObsEnv)):
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry)


def grid_teacher(obs):
    return int(obs[0, 0] > 0)  # indexes the raw (2, 3) observation


def frozen_lake_teacher(state):  # the shortest safe path on the 4x4 map, not slippery
    return {0: 1, 4: 1, 8: 2, 9: 1, 13: 2, 14: 2}.get(int(state), 1)


def test_quick_cartpole_distillation_reaches_475_and_grows():
    r = npl.distill("CartPole-v1", cartpole_teacher, model="smgrnn", seed=0, **QUICK)
    assert r["return_mean"] >= 475
    assert sum(e["relays"] for e in r["events"]) > 0  # growth happened
    assert r["n_hidden"] != 4 or r["n_edges"] != 32   # and changed the network
    for key in ("return_mean", "return_std", "n_params", "n_hidden", "n_edges", "history"):
        assert key in r
    assert [h["step"] for h in r["history"]] == [500, 1000, 1500, 2000]
    assert all({"step", "return", "n_params"} <= set(h) for h in r["history"])
    module = r["student"].core.to_module()  # the grown core ships as a plain module
    x = torch.randn(3, 4)
    assert torch.allclose(module(x), r["student"].core(x), atol=1e-6)


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path):
    opts = dict(steps=600, n_data=1500, eval_every=300, eval_episodes=2, curve_episodes=1,
                window=50, interval=50, warmup=50, min_age=50, p_rand=0.5, checkpoint_every=200,
                tau_w=0.05, tau_delta=1e-3, eta_prune=0.5)  # prunes and grows after the resume
    full = npl.distill("CartPole-v1", None, model="smgrnn", seed=3, **opts)
    path = tmp_path / "run.ckpt"
    npl.distill("CartPole-v1", None, model="smgrnn", seed=3, checkpoint=path, **{**opts, "steps": 400})
    wall_before = npl.load(path)["extra"]["wall_s"]
    resumed = npl.distill("CartPole-v1", None, model="smgrnn", seed=3, checkpoint=path, **opts)
    assert resumed["wall_s"] > wall_before > 0  # time before the interruption is counted
    a, b = full["student"].core, resumed["student"].core
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert torch.equal(a.edge_alive, b.edge_alive) and a.n_hidden == b.n_hidden
    assert resumed["return_mean"] == full["return_mean"]
    assert resumed["events"] == full["events"] and resumed["final_loss"] == full["final_loss"]
    # the run left its last checkpoint, at the final step: as if killed in the final evaluation
    assert npl.load(path)["step"] == 600
    at_end = npl.distill("CartPole-v1", None, model="smgrnn", seed=3, checkpoint=path, **opts)
    assert at_end["final_loss"] == full["final_loss"] and at_end["return_mean"] == full["return_mean"]
    with pytest.raises(npl.CheckpointError, match="different run"):
        npl.distill("CartPole-v1", None, model="smgrnn", seed=4, checkpoint=path, **opts)


@pytest.mark.parametrize("model, extra", [
    ("mlp-16", {}),                                            # a plain torch MLP student
    ("smgrnn", {"dagger_rounds": 2, "dagger_episodes": 2}),   # relabelling before and after the resume
])
def test_resume_equals_uninterrupted_for_mlp_students_and_dagger(tmp_path, model, extra, monkeypatch):
    from neuroplastic.train.distill import _Run
    opts = dict(steps=600, n_data=800, eval_every=300, eval_episodes=2, curve_episodes=1, checkpoint_every=100,
                **extra)
    full = npl.distill("CartPole-v1", None, model=model, seed=2, **opts)
    path = tmp_path / "run.ckpt"
    save = _Run.save

    def save_then_die_at_300(self, path, state, spm_config):  # as if killed right after a checkpoint
        save(self, path, state, spm_config)
        if state.step == 300:
            raise KeyboardInterrupt

    monkeypatch.setattr(_Run, "save", save_then_die_at_300)
    with pytest.raises(KeyboardInterrupt):
        npl.distill("CartPole-v1", None, model=model, seed=2, checkpoint=path, **opts)
    monkeypatch.setattr(_Run, "save", save)
    assert npl.load(path)["step"] == 300
    resumed = npl.distill("CartPole-v1", None, model=model, seed=2, checkpoint=path, **opts)
    for p, q in zip(full["student"].parameters(), resumed["student"].parameters()):
        assert torch.equal(p, q)
    assert resumed["n_data"] == full["n_data"] and resumed["history"] == full["history"]
    assert resumed["return_mean"] == full["return_mean"] and resumed["final_loss"] == full["final_loss"]


def test_graphnet_students_report_no_mlp_widths_and_mlps_no_initial_hidden():
    opts = dict(steps=20, n_data=100, eval_every=20, eval_episodes=1, curve_episodes=1)
    grown = npl.distill("CartPole-v1", None, model="smgrnn", **opts)
    mlp = npl.distill("CartPole-v1", None, model="mlp-8", **opts)
    assert "hidden" not in grown["config"] and grown["config"]["init_hidden"] == 16
    assert mlp["config"]["hidden"] == [8] and "init_hidden" not in mlp["config"]


def test_continuous_env_and_teacher_not_shipped_with_the_library():
    def push_with_velocity(obs):  # MountainCarContinuous: energy pumping
        return np.array([1.0 if obs[1] >= 0 else -1.0], dtype=np.float32)

    r = npl.distill("MountainCarContinuous-v0", push_with_velocity, model="smgrnn", seed=0, steps=1500,
                    n_data=3000, eval_every=1500, eval_episodes=3, curve_episodes=1, lr=3e-3)
    assert r["teacher_return_mean"] > 80
    assert r["return_mean"] > 0.8 * r["teacher_return_mean"]


def test_dagger_and_mlp_baseline_on_a_discrete_env():
    def acrobot(obs):  # swing: torque along the first link's angular velocity
        return 2 if obs[4] > 0 else 0

    r = npl.distill("Acrobot-v1", acrobot, model="mlp", hidden=[16], seed=0, steps=600, n_data=1500,
                    dagger_rounds=1, dagger_episodes=2, eval_every=600, eval_episodes=2, curve_episodes=1)
    assert r["n_data"] > 1500  # DAgger added relabelled student states
    assert r["n_params"] == 6 * 16 + 16 + 16 * 3 + 3


@pytest.mark.parametrize("teacher, env_id, message", [
    (lambda obs: 5, "CartPole-v1", "outside Discrete"),
    (lambda obs: 0.5, "CartPole-v1", "not an integer"),
    (lambda obs: np.zeros(2, dtype=np.float32), "Pendulum-v1", "does not fit a Box"),
    (lambda obs: np.array([9.0], dtype=np.float32), "Pendulum-v1", "outside the bounds"),
    (lambda obs: "left", "CartPole-v1", r"'left' \(str\) is not a number for a Discrete\(2\)"),
    (lambda obs: None, "CartPole-v1", "None .* is not a number"),
    (lambda obs: ["up"], "Pendulum-v1", r"\['up'\] \(list\) is not a number for a Box"),
    (lambda obs: np.zeros(500), "Pendulum-v1", "does not fit a Box"),
])
def test_teacher_that_does_not_fit_the_action_space(teacher, env_id, message):
    with pytest.raises(npl.TeacherError, match=message) as info:
        npl.distill(env_id, teacher, steps=10, n_data=10)
    assert "\n" not in str(info.value)  # one line, even for a long array


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(env_id="NoSuchEnv-v0"), npl.UnknownNameError, "NoSuchEnv-v0"),
    (dict(env_id="CartPole-v1", model="transformer"), npl.UnknownNameError, "transformer"),
    (dict(env_id="CartPole-v1", stepz=5), npl.ConfigError, "unknown option 'stepz'"),
    (dict(env_id="CartPole-v1", steps=-5), npl.ConfigError, "steps=-5"),
    (dict(env_id="CartPole-v1", window=-1), npl.ConfigError, "window=-1"),
    (dict(env_id="CartPole-v1", model="mlp", window=5), npl.ConfigError, "has no SPM"),
    (dict(env_id="CartPole-v1", teacher="expert"), npl.ConfigError, "callable"),
])
def test_bad_distill_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        npl.distill(**kwargs)


def test_box_observations_of_any_shape_are_flattened_for_the_student_only():
    seen = []

    def teacher(obs):
        seen.append((type(obs), obs.shape, obs.dtype))
        return grid_teacher(obs)

    r = npl.distill("NplTest/GridObs-v0", teacher, model="static", seed=0, env_kwargs={"horizon": 5},
                    steps=300, n_data=200, eval_every=300, eval_episodes=4, curve_episodes=1, lr=1e-2,
                    dagger_rounds=1, dagger_episodes=1)
    assert set(seen) == {(np.ndarray, (2, 3), np.dtype(np.float32))}  # data, teacher eval and DAgger labels
    assert r["student"].core.n_in == 6
    assert r["return_mean"] >= 4  # the student learnt from the flattened inputs (max 5)


def test_discrete_observations_are_one_hot_for_the_student():
    seen = set()

    def teacher(state):
        seen.add(type(state))
        return frozen_lake_teacher(state)

    r = npl.distill("FrozenLake-v1", teacher, model="mlp", hidden=[16], seed=0, env_kwargs={"is_slippery": False},
                    steps=300, n_data=60, eval_every=300, eval_episodes=2, curve_episodes=1, lr=1e-2)
    assert seen == {int}  # the teacher gets the env's own state index
    assert r["student"].core[0].in_features == 16  # one-hot of Discrete(16)
    assert r["teacher_return_mean"] == 1.0 and r["return_mean"] == 1.0


def test_unsupported_observation_space_is_named():
    with pytest.raises(npl.ConfigError, match="observation space Dict.*not supported"):
        npl.distill("NplTest/DictObs-v0", lambda obs: 0, **TINY)


@pytest.mark.parametrize("model, n_params", [
    ("mlp-16", 4 * 16 + 16 + 16 * 2 + 2),
    ("mlp-8x4", 4 * 8 + 8 + 8 * 4 + 4 + 4 * 2 + 2),
])
def test_mlp_variant_names_from_the_experiment_tables(model, n_params):
    r = npl.distill("CartPole-v1", None, model=model, **TINY)
    assert r["model"] == model and r["n_params"] == n_params
    same = npl.distill("CartPole-v1", None, model=model, hidden=r["config"]["hidden"], **TINY)
    assert same["n_params"] == n_params  # a matching explicit hidden= is fine


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(model="mlp-16", hidden=[32]), npl.ConfigError, r"model='mlp-16' means hidden=\[16\], but hidden=\[32\]"),
    (dict(model="mlp-0"), npl.UnknownNameError, "mlp-0"),
    (dict(model="mlp-16x"), npl.UnknownNameError, "mlp-WxW"),
    (dict(model="mlp-"), npl.UnknownNameError, "mlp-"),
    (dict(model=16), npl.UnknownNameError, "16"),
])
def test_bad_model_names(kwargs, error, message):
    with pytest.raises(error, match=message):
        npl.distill("CartPole-v1", None, **kwargs, **TINY)


def test_threads_apply_during_the_call_and_are_restored():
    during = []

    def teacher(obs):
        during.append(torch.get_num_threads())
        return cartpole_teacher(obs)

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        npl.distill("CartPole-v1", teacher, model="mlp-16", **TINY)
        assert set(during) == {1} and torch.get_num_threads() == 2
        with pytest.raises(npl.TeacherError):  # restored on the way out of a failure too
            npl.distill("CartPole-v1", lambda obs: "left", threads=1, **TINY)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [0, -1, True, 1.5, "2"])
def test_bad_threads(threads):
    with pytest.raises(npl.ConfigError, match="threads="):
        npl.distill("CartPole-v1", None, threads=threads, **TINY)


def test_env_kwargs_reach_every_env_and_survive_checkpoints(tmp_path):
    # No DAgger here: its schedule follows `steps`, which the shortened first run changes.
    # The Box test above runs DAgger on the same env, which cannot be made without the kwargs.
    opts = dict(steps=60, n_data=40, eval_every=30, eval_episodes=2, curve_episodes=1,
                window=10, interval=10, warmup=10, min_age=10, checkpoint_every=20,
                env_kwargs={"horizon": 6, "payload": (1, [2.0], {"k": None})})
    full = npl.distill("NplTest/GridObs-v0", grid_teacher, seed=1, **opts)
    assert full["teacher_return_mean"] == 6.0 and full["config"]["env_kwargs"] == opts["env_kwargs"]
    path = tmp_path / "run.ckpt"
    npl.distill("NplTest/GridObs-v0", grid_teacher, seed=1, checkpoint=path, **{**opts, "steps": 40})
    assert npl.load(path)["extra"]["identity"]["config"]["env_kwargs"] == opts["env_kwargs"]  # weights-only load
    resumed = npl.distill("NplTest/GridObs-v0", grid_teacher, seed=1, checkpoint=path, threads=2, **opts)
    assert resumed["return_mean"] == full["return_mean"] and resumed["events"] == full["events"]
    assert torch.equal(resumed["student"].core.weight, full["student"].core.weight)
    with pytest.raises(npl.CheckpointError, match="different run"):
        npl.distill("NplTest/GridObs-v0", grid_teacher, seed=1, checkpoint=path,
                    **{**opts, "env_kwargs": {"horizon": 6}})


def test_env_kwargs_switch_lunar_lander_to_continuous_actions():
    from types import SimpleNamespace

    from gymnasium.envs.box2d.lunar_lander import heuristic

    stub = SimpleNamespace(unwrapped=SimpleNamespace(continuous=True))
    r = npl.distill("LunarLander-v3", lambda obs: heuristic(stub, obs).astype(np.float32), model="mlp-16",
                    env_kwargs={"continuous": True}, **TINY)
    assert r["n_params"] == 8 * 16 + 16 + 16 * 2 + 2  # two continuous outputs, not four logits


@pytest.mark.parametrize("env_kwargs, message", [
    ("continuous=True", "must be a dict with string keys"),
    ({1: 2}, "must be a dict with string keys"),
    ({"render": object()}, r"env_kwargs\['render'\]=.* must be plain data"),
    ({"nope": 1}, "'CartPole-v1' refused env_kwargs=.*nope"),
])
def test_bad_env_kwargs(env_kwargs, message):
    with pytest.raises(npl.ConfigError, match=message):
        npl.distill("CartPole-v1", None, env_kwargs=env_kwargs, **TINY)


def test_numpy_numbers_are_accepted_like_python_numbers():
    r = npl.distill("CartPole-v1", None, model="smgrnn", seed=np.int64(1), steps=np.int64(20),
                    n_data=np.int32(40), eval_every=np.int64(20), eval_episodes=np.int64(1),
                    curve_episodes=np.int64(1), lr=np.float32(1e-3), window=np.int64(10),
                    interval=np.int64(10), prune=np.bool_(True), p_rand=np.float64(0.5))
    assert type(r["seed"]) is int and r["seed"] == 1
    assert type(r["config"]["steps"]) is int and type(r["config"]["lr"]) is float
    assert type(r["spm"]["window"]) is int and r["spm"]["prune"] is True
    mlp = npl.distill("CartPole-v1", None, model="mlp", hidden=[np.int64(8)], **TINY)
    assert mlp["n_params"] == 4 * 8 + 8 + 8 * 2 + 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=True), "steps=True"),
    (dict(steps=np.bool_(True)), "steps=True"),
    (dict(seed=True), "seed=True"),
    (dict(seed=np.int64(-1)), "seed=-1"),
    (dict(seed=1.5), "seed=1.5"),
    (dict(window=np.bool_(False)), "window=False"),
    (dict(model="mlp", hidden=[True]), "hidden=.True"),
])
def test_bools_are_still_refused_as_numbers(kwargs, message):
    with pytest.raises(npl.ConfigError, match=message):
        npl.distill("CartPole-v1", None, **{**TINY, **kwargs})
