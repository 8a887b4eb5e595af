import numpy as np
import pytest
import torch

import neuroplastic as npl
from neuroplastic.tasks.teachers import cartpole_teacher

QUICK = dict(steps=2000, n_data=4000, eval_every=500, eval_episodes=5, curve_episodes=2)


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
                window=50, interval=50, warmup=50, min_age=50, p_rand=0.5, checkpoint_every=200)
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
    assert resumed["events"] == full["events"]
    with pytest.raises(npl.CheckpointError, match="different run"):
        npl.distill("CartPole-v1", None, model="smgrnn", seed=4, checkpoint=path, **opts)


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
])
def test_teacher_that_does_not_fit_the_action_space(teacher, env_id, message):
    with pytest.raises(npl.TeacherError, match=message):
        npl.distill(env_id, teacher, steps=10, n_data=10)


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
