"""Tests for the built-in expert teachers used for policy distillation."""

import gymnasium as gym
import numpy as np
import pytest

from neuroplastic.errors import TeacherError
from neuroplastic.tasks.teachers import (
    TEACHERS,
    cartpole_teacher,
    evaluate_teacher,
    get_teacher,
    lunar_lander_teacher,
    pendulum_teacher,
)

# All three evaluations together take about a second; 20 seeds gives a
# meaningful mean without slowing the suite.
EPISODES = 20


def test_cartpole_teacher_is_perfect():
    mean, std = evaluate_teacher("CartPole-v1", cartpole_teacher, episodes=EPISODES, seed=0)
    assert mean == 500.0
    assert std == 0.0


def test_lunar_lander_teacher_lands():
    mean, _ = evaluate_teacher("LunarLander-v3", lunar_lander_teacher, episodes=EPISODES, seed=0)
    assert mean > 200.0


def test_pendulum_teacher_swings_up_and_balances():
    mean, _ = evaluate_teacher("Pendulum-v1", pendulum_teacher, episodes=EPISODES, seed=0)
    assert mean > -250.0


def test_registry_maps_env_ids_to_teachers():
    assert set(TEACHERS) == {"CartPole-v1", "LunarLander-v3", "Pendulum-v1"}
    assert get_teacher("CartPole-v1") is cartpole_teacher
    assert get_teacher("LunarLander-v3") is lunar_lander_teacher
    assert get_teacher("Pendulum-v1") is pendulum_teacher


def test_get_teacher_unknown_id_raises_value_error():
    with pytest.raises(ValueError, match="NoSuchEnv-v0"):
        get_teacher("NoSuchEnv-v0")


@pytest.mark.parametrize("env_id", sorted(TEACHERS))
def test_teacher_actions_are_valid_for_the_action_space(env_id):
    env = gym.make(env_id)
    teacher = get_teacher(env_id)
    obs, _ = env.reset(seed=123)
    for _ in range(20):
        action = teacher(obs)
        if isinstance(env.action_space, gym.spaces.Discrete):
            assert isinstance(action, int)
        else:
            assert isinstance(action, np.ndarray)
            assert action.dtype == np.float32
            assert action.shape == env.action_space.shape
        assert env.action_space.contains(action)
        obs, *_ = env.step(action)
    env.close()


def test_lunar_lander_teacher_matches_gymnasium_heuristic():
    from gymnasium.envs.box2d.lunar_lander import heuristic

    env = gym.make("LunarLander-v3")
    obs, _ = env.reset(seed=7)
    for _ in range(50):
        expected = heuristic(env, obs)
        assert lunar_lander_teacher(obs) == expected
        obs, *_ = env.step(expected)
    env.close()


def test_pendulum_teacher_is_deterministic_and_continuous():
    # Sweep angle at fixed velocity (step ~0.003 rad): the action must change by
    # at most 0.1 per step, i.e. no jumps and a modest slope everywhere,
    # in particular across the swing-up / stabiliser blending window.
    thetas = np.linspace(-np.pi, np.pi, 2001)
    for w in (-3.0, -0.5, 0.0, 0.5, 3.0):
        obs = [np.array([np.cos(t), np.sin(t), w], dtype=np.float32) for t in thetas]
        u = np.array([pendulum_teacher(o)[0] for o in obs])
        u_again = np.array([pendulum_teacher(o)[0] for o in obs])
        assert np.array_equal(u, u_again)
        # Skip the +-pi wrap where theta itself is discontinuous.
        inner = np.abs(thetas[1:]) < 3.0
        assert np.max(np.abs(np.diff(u))[inner]) < 0.1


def test_evaluate_teacher_is_reproducible():
    a = evaluate_teacher("Pendulum-v1", pendulum_teacher, episodes=2, seed=5)
    b = evaluate_teacher("Pendulum-v1", pendulum_teacher, episodes=2, seed=5)
    assert a == b


def test_evaluate_teacher_rejects_zero_episodes():
    with pytest.raises(ValueError):
        evaluate_teacher("Pendulum-v1", pendulum_teacher, episodes=0)


def test_evaluate_teacher_refuses_a_non_numeric_action():
    with pytest.raises(TeacherError, match="'left'"):
        evaluate_teacher("CartPole-v1", lambda obs: "left", episodes=1)


def test_evaluate_teacher_passes_env_kwargs_to_gymnasium():
    mean, _ = evaluate_teacher("FrozenLake-v1", lambda s: {0: 1, 4: 1, 8: 2, 9: 1, 13: 2, 14: 2}.get(s, 1),
                               episodes=2, env_kwargs={"is_slippery": False})
    assert mean == 1.0
