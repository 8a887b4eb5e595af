"""Gymnasium control tasks: making envs, describing action spaces, rollouts.

One rollout routine serves every purpose (teacher demonstrations, DAgger states and
evaluation): it steps a list of environments in lock-step so that a neural policy is called
once per time step on a batch of observations rather than once per environment.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from ..errors import ConfigError, TeacherError, UnknownNameError

# Reset seeds: demonstrations and evaluation never share an initial state.
DATA_SEED_BASE = 0
EVAL_SEED_BASE = 1_000_000


def make_env(env_id: str) -> gym.Env:
    """gymnasium.make with a one-line error for ids gymnasium does not know."""
    if not isinstance(env_id, str):
        raise UnknownNameError(f"env id must be a string, got {env_id!r}")
    try:
        return gym.make(env_id)
    except gym.error.DependencyNotInstalled as exc:
        raise UnknownNameError(f"environment {env_id!r} needs a missing package: {exc}") from None
    except gym.error.Error as exc:
        raise UnknownNameError(f"unknown environment id {env_id!r}: {exc}") from None
    except ImportError as exc:
        raise UnknownNameError(f"environment {env_id!r} needs a missing package: {exc}") from None


@dataclass(frozen=True)
class ActionSpec:
    """What the student must output for an action space."""

    discrete: bool
    n_out: int
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    @classmethod
    def of(cls, space: gym.Space) -> "ActionSpec":
        if isinstance(space, gym.spaces.Discrete):
            return cls(True, int(space.n))
        if isinstance(space, gym.spaces.Box) and len(space.shape) == 1 and np.all(np.isfinite(space.low)) \
                and np.all(np.isfinite(space.high)):
            return cls(False, int(space.shape[0]), space.low.astype(np.float32), space.high.astype(np.float32))
        raise ConfigError(f"action space {space} is not supported; expected Discrete or a bounded 1-D Box")

    def check(self, action) -> np.ndarray | int:
        """A teacher's action as the env expects it, or a TeacherError naming the value."""
        if self.discrete:
            a = np.asarray(action)
            if a.size != 1 or not np.issubdtype(a.dtype, np.integer) and not float(a.reshape(-1)[0]).is_integer():
                raise TeacherError(f"teacher action {action!r} is not an integer for a Discrete({self.n_out}) space")
            a = int(a.reshape(-1)[0])
            if not 0 <= a < self.n_out:
                raise TeacherError(f"teacher action {a} is outside Discrete({self.n_out})")
            return a
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        if a.shape != (self.n_out,) or not np.all(np.isfinite(a)):
            raise TeacherError(f"teacher action {action!r} does not fit a Box of shape ({self.n_out},)")
        if np.any(a < self.low - 1e-6) or np.any(a > self.high + 1e-6):
            raise TeacherError(f"teacher action {a.tolist()} is outside the bounds "
                               f"[{self.low.tolist()}, {self.high.tolist()}]")
        return a


def rollout(env_id: str, act: Callable[[np.ndarray], np.ndarray], episodes: int, seed_base: int,
            record: bool = False, max_steps: int | None = None):
    """Run `episodes` episodes in lock-step; `act` maps a (k, obs_dim) batch to k actions.

    Returns (returns, observations) where observations is the (n, obs_dim) array of every
    state visited (only when `record`), in a fixed order so runs are reproducible.
    """
    if episodes < 1:
        raise ConfigError(f"episodes={episodes} must be >= 1")
    envs = [make_env(env_id) for _ in range(episodes)]
    obs = [env.reset(seed=seed_base + i)[0] for i, env in enumerate(envs)]
    returns = np.zeros(episodes)
    running = list(range(episodes))
    visited = []
    steps = 0
    try:
        while running and (max_steps is None or steps < max_steps):
            batch = np.stack([obs[i] for i in running]).astype(np.float32)
            if record:
                visited.append(batch)
            actions = act(batch)
            still = []
            for i, a in zip(running, actions):
                obs[i], r, terminated, truncated, _ = envs[i].step(a)
                returns[i] += float(r)
                if not (terminated or truncated):
                    still.append(i)
            running = still
            steps += 1
    finally:
        for env in envs:
            env.close()
    observations = np.concatenate(visited) if visited else None
    return returns, observations


def teacher_batch(teacher, spec: ActionSpec) -> Callable[[np.ndarray], list]:
    """Lift a per-observation teacher to the batched form `rollout` calls, checking actions."""
    def act(batch: np.ndarray) -> list:
        return [spec.check(teacher(o)) for o in batch]
    return act
