"""Gymnasium control tasks: making envs, describing observation and action spaces, rollouts.

One rollout routine serves every purpose (teacher demonstrations, DAgger states and
evaluation): it steps a list of environments in lock-step so that a neural policy is called
once per time step on a batch of observations rather than once per environment.

Observations stay raw (exactly as the env returns them) inside rollouts, because a teacher is
written against the env's own observations; a student sees them through `ObsSpec.flatten`.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.spaces.utils import flatdim, flatten

from ..errors import ConfigError, TeacherError, UnknownNameError

# Reset seeds: demonstrations and evaluation never share an initial state.
DATA_SEED_BASE = 0
EVAL_SEED_BASE = 1_000_000


def registered_id(env_id: str) -> str:
    """The id of gymnasium's `module:EnvId` form, read as gymnasium.make reads it: the module is
    imported (its import registers the user's envs) and the bare id returned, for look-ups
    that do not take the form (gymnasium.spec). Any other id comes back as it is."""
    if not isinstance(env_id, str) or ":" not in env_id:
        return env_id
    module, _, name = env_id.partition(":")
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise UnknownNameError(f"environment {env_id!r}: its module {module!r} cannot be imported ({exc}; is its "
                               "folder on PYTHONPATH?)") from None
    except Exception as exc:  # the user's module failed while it ran: name where, not our traceback
        raise UnknownNameError(f"environment {env_id!r}: importing its module {module!r} raised "
                               f"{type(exc).__name__}: {exc}") from None
    return name


def make_env(env_id: str, env_kwargs: dict | None = None) -> gym.Env:
    """gymnasium.make(env_id, **env_kwargs) with a one-line error for ids or kwargs it refuses."""
    if not isinstance(env_id, str):
        raise UnknownNameError(f"env id must be a string, got {env_id!r}")
    kwargs = env_kwargs or {}
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise UnknownNameError(f"environment {env_id!r} needs a missing package: {exc}") from None
    except gym.error.UnregisteredEnv as exc:
        raise UnknownNameError(f"unknown environment id {env_id!r}: {exc}") from None
    except ImportError as exc:
        raise UnknownNameError(f"environment {env_id!r} needs a missing package: {exc}") from None
    except (gym.error.Error, TypeError, ValueError) as exc:
        if not kwargs:  # without kwargs the caller gave nothing that could be wrong but the id
            if isinstance(exc, gym.error.Error):
                raise UnknownNameError(f"unknown environment id {env_id!r}: {exc}") from None
            raise
        raise ConfigError(f"environment {env_id!r} refused env_kwargs={kwargs!r}: {_one_line(exc)}") from None


def _one_line(value, limit: int = 200) -> str:
    """str(value) squeezed onto one line: errors are one line, and a repr of an array is not."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ObsSpec:
    """What the student sees of an observation space: a flat float32 vector of n_in values.

    Box observations of any shape are flattened and Discrete ones one-hot encoded, both by
    gymnasium's own `flatten`, so the encoding is the one gymnasium's wrappers use.
    """

    def __init__(self, space: gym.Space):
        # Only the two encodings the distillation protocol defines. Graph, Sequence or Text spaces
        # have no fixed size at all, and for Dict or Tuple the student's input layout would be an
        # accident of gymnasium's flattening order; name the space rather than guess.
        if not isinstance(space, gym.spaces.Box | gym.spaces.Discrete):
            raise ConfigError(f"observation space {space} is not supported; expected a Box (any shape, "
                              f"flattened) or Discrete (one-hot)")
        self.space, self.n_in = space, int(flatdim(space))

    def flatten(self, observations: Sequence) -> np.ndarray:
        """(k, n_in) float32 student inputs from k raw observations."""
        if isinstance(self.space, gym.spaces.Box):  # one array operation for the common case
            return np.asarray(observations, dtype=np.float32).reshape(len(observations), self.n_in)
        flat = np.zeros((len(observations), self.n_in), dtype=np.float32)
        for row, o in enumerate(observations):
            flat[row] = flatten(self.space, o)
        return flat


@dataclass(frozen=True)
class ActionSpec:
    """What the student must output for an action space."""

    discrete: bool
    n_out: int
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    @classmethod
    def of(cls, space: gym.Space) -> ActionSpec:
        if isinstance(space, gym.spaces.Discrete):
            return cls(True, int(space.n))
        if isinstance(space, gym.spaces.Box) and len(space.shape) == 1 and np.all(np.isfinite(space.low)) \
                and np.all(np.isfinite(space.high)):
            return cls(False, int(space.shape[0]), space.low.astype(np.float32), space.high.astype(np.float32))
        raise ConfigError(f"action space {space} is not supported; expected Discrete or a bounded 1-D Box")

    def check(self, action) -> np.ndarray | int:
        """A teacher's action as the env expects it, or a TeacherError naming the value."""
        try:
            a = np.asarray(action)
        except (TypeError, ValueError):  # e.g. a ragged list
            a = None
        # Anything that is not numbers (a string such as "left", None, an object) cannot be an
        # action here; left to numpy it would fail later with a bare ValueError or TypeError.
        if a is None or a.dtype.kind not in "biuf":
            space = f"Discrete({self.n_out})" if self.discrete else f"Box of shape ({self.n_out},)"
            raise TeacherError(f"teacher action {_one_line(repr(action))} ({type(action).__name__}) is not "
                               f"a number for a {space} space")
        if self.discrete:
            if a.size != 1 or not float(a.reshape(-1)[0]).is_integer():
                raise TeacherError(f"teacher action {_one_line(repr(action))} is not an integer for a "
                                   f"Discrete({self.n_out}) space")
            a = int(a.reshape(-1)[0])
            if not 0 <= a < self.n_out:
                raise TeacherError(f"teacher action {a} is outside Discrete({self.n_out})")
            return a
        a = a.astype(np.float32).reshape(-1)
        if a.shape != (self.n_out,) or not np.all(np.isfinite(a)):
            raise TeacherError(f"teacher action {_one_line(repr(action))} does not fit a Box of shape "
                               f"({self.n_out},)")
        if np.any(a < self.low - 1e-6) or np.any(a > self.high + 1e-6):
            raise TeacherError(f"teacher action {_one_line(a.tolist())} is outside the bounds "
                               f"[{self.low.tolist()}, {self.high.tolist()}]")
        return a


def rollout(env_id: str, act: Callable[[list], Sequence], episodes: int, seed_base: int,
            record: bool = False, max_steps: int | None = None, env_kwargs: dict | None = None):
    """Run `episodes` episodes in lock-step; `act` maps a list of k raw observations to k actions.

    Returns (returns, observations) where observations is the list of every raw observation
    visited (only when `record`), in a fixed order so runs are reproducible. Raw, because a
    teacher relabelling them must see what the env gave; `ObsSpec.flatten` makes student inputs.
    """
    if episodes < 1:
        raise ConfigError(f"episodes={episodes} must be >= 1")
    envs = [make_env(env_id, env_kwargs) for _ in range(episodes)]
    obs = [env.reset(seed=seed_base + i)[0] for i, env in enumerate(envs)]
    returns = np.zeros(episodes)
    running = list(range(episodes))
    visited = []
    steps = 0
    try:
        while running and (max_steps is None or steps < max_steps):
            batch = [obs[i] for i in running]
            if record:  # a copy: an env may hand out one buffer and update it in place
                visited += [o.copy() if isinstance(o, np.ndarray) else o for o in batch]
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
    return returns, (visited if record else None)


def teacher_batch(teacher, spec: ActionSpec) -> Callable[[Sequence], list]:
    """Lift a per-observation teacher to the batched form `rollout` calls, checking actions."""
    def act(batch: Sequence) -> list:
        return [spec.check(teacher(o)) for o in batch]
    return act
