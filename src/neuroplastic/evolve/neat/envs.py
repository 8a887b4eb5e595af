"""A gymnasium environment as a NEAT fitness: P genomes x B episodes stepped together.

The population's actions come from one GraphBatch forward with per-member inputs (P, B,
n_in). With vectorization="sync" (the default) the P*B environments are P*B gymnasium envs,
each stepped only while its episode runs, and every genome plays the same B episodes of a
generation (reset seeds seed + generation*B + b), so genomes are compared on equal terms and
a run is reproducible and resumable. vectorization="vector" uses the env's own numpy vector
implementation where it has one (CartPole-v1): faster, but it steps every copy, and one reset
seed starts all copies, so each genome plays episodes of its own (still reproducible). A
genome's fitness is its mean return over the B episodes (each cut at max_steps). A population with an
`observe_reward(reward (P, B), alive (P, B))` method is told each step's reward and which
episodes are still running (a self-editing controller reads its recent reward).
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from ...core.validate import check_choice, check_int
from ...errors import ConfigError, UnknownNameError
from ...tasks.control import registered_id


def _spaces(env_id: str, gym_id: str):
    """The env's observation and action spaces; the id must be registered as written, with its
    version: gymnasium would run an unversioned id as its latest version, whose meaning
    changes when a new one is added, and the spec read below needs the exact id. `gym_id`:
    `env_id` as gymnasium looks it up (`registered_id`); errors name `env_id`."""
    import gymnasium as gym
    try:
        gym.spec(gym_id)
        env = gym.make(gym_id)
    except (gym.error.Error, ImportError) as exc:
        versions = sorted(k for k in gym.registry if k.startswith(f"{gym_id}-v"))
        hint = f"; did you mean {versions[-1]!r}?" if versions else ""
        raise UnknownNameError(f"unknown environment {env_id!r} ({str(exc).splitlines()[0]}){hint}") from None
    obs, act = env.observation_space, env.action_space
    env.close()
    return obs, act


def discrete_actions(y: torch.Tensor) -> torch.Tensor:
    """argmax over each row of (n, k) outputs (NaN counts as the largest, the first of equals
    wins). For two actions it is one comparison: torch's argmax over a dimension of 2 costs
    ten times as much at 10,000 rows, a twentieth of a CartPole generation there."""
    if y.shape[1] != 2:
        return y.argmax(1)
    first, second = y[:, 0], y[:, 1]
    return ((second > first) | (second.isnan() & ~first.isnan())).long()


class EnvFitness:
    """fitness(pop) -> (P,) mean return; NEAT tells it the generation (set_generation)."""

    def __init__(self, env_id: str, episodes: int = 1, max_steps: int | None = None, seed: int = 0,
                 vectorization: str = "sync"):
        import gymnasium as gym
        self.env_id = env_id
        self.episodes = check_int(episodes, "episodes", 1)
        self.max_steps = None if max_steps is None else check_int(max_steps, "max_steps", 1)
        self.seed = check_int(seed, "seed", 0)
        self.vectorization = check_choice(vectorization, "vectorization", ("sync", "vector"))
        self._gym_id = registered_id(env_id)  # the bare id of a `module:EnvId`, for gymnasium's calls
        obs, act = _spaces(env_id, self._gym_id)
        spec = gym.spec(self._gym_id)
        if self.vectorization == "vector" and spec.vector_entry_point is None:
            raise ConfigError(f"{env_id} has no numpy vector implementation; use vectorization='sync'")
        if self.max_steps is None and spec.max_episode_steps is None:
            raise ConfigError(f"{env_id} has no time limit of its own: give max_steps, or a rollout may never end")
        if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
            raise ConfigError(f"{env_id}: observations are {obs}; a controller here needs a 1-D Box")
        if isinstance(act, gym.spaces.Discrete):
            self.n_out, self.discrete = int(act.n), True
            self.first_action = int(act.start)  # Discrete(n, start=k): actions k .. k + n - 1
        elif isinstance(act, gym.spaces.Box) and len(act.shape) == 1:
            self.n_out, self.discrete = int(act.shape[0]), False
            self.low, self.high = act.low, act.high
        else:
            raise ConfigError(f"{env_id}: actions are {act}; a controller here handles Discrete or a 1-D Box")
        self.n_in = int(obs.shape[0])
        self.generation = 0
        self._env = None

    def set_generation(self, generation: int) -> None:
        self.generation = generation

    def check(self, n_in: int, n_out: int) -> None:
        if (n_in, n_out) != (self.n_in, self.n_out):
            raise ConfigError(f"{self.env_id} needs num_inputs = {self.n_in} and num_outputs = {self.n_out} "
                              f"({'one per action' if self.discrete else 'one per action dimension'}); "
                              f"the config has {n_in} and {n_out}")

    def _vector_env(self, n: int):
        import gymnasium as gym
        if self._env is None or self._env.num_envs != n:
            if self._env is not None:
                self._env.close()
            if self.vectorization == "vector":
                self._env = gym.make_vec(self._gym_id, num_envs=n, vectorization_mode="vector_entry_point")
            else:
                self._env = RunningEnvs(self._gym_id, n)
        return self._env

    def __call__(self, pop) -> torch.Tensor:
        first = self.seed + self.generation * self.episodes
        return torch.as_tensor(self.returns(pop, first).mean(1))

    def returns(self, pop, first_seed: int) -> np.ndarray:
        """(P, B) returns of the B episodes with reset seeds first_seed + b, for every member."""
        self.check(pop.n_in, pop.n_out)
        P, B = len(pop), self.episodes
        env = self._vector_env(P * B)
        if self.vectorization == "vector":
            obs, _ = env.reset(seed=first_seed)
        else:
            obs, _ = env.reset(seed=[first_seed + b for _ in range(P) for b in range(B)])
        total = np.zeros(P * B)
        alive = np.ones(P * B, dtype=bool)
        steps = 0
        observe = getattr(pop, "observe_reward", None)  # controllers that read their reward
        with torch.no_grad():  # one context for the episode: entering it costs as much as a small op
            while alive.any() and (self.max_steps is None or steps < self.max_steps):
                # straight to the network's dtype: a float32 observation through float64 and back
                # would be the same numbers, at two more copies a step
                x = torch.from_numpy(np.ascontiguousarray(obs)).to(pop.weight.dtype).view(P, B, self.n_in)
                y = pop(x).reshape(P * B, self.n_out)
                if self.discrete:
                    action = discrete_actions(y).numpy() + self.first_action
                else:
                    action = np.clip(y.double().numpy(), self.low, self.high)
                if self.vectorization == "vector":
                    obs, reward, terminated, truncated, _ = env.step(action)
                else:
                    obs, reward, terminated, truncated = env.step(action, alive)
                earned = np.where(alive, reward, 0.0)
                total += earned
                alive &= ~(terminated | truncated)
                if observe is not None:
                    observe(earned.reshape(P, B), alive.reshape(P, B))
                steps += 1
        _release_freed_heap()
        return total.reshape(P, B)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


class RunningEnvs:
    """n copies of one gymnasium env, of which `step` advances only those still running.

    gymnasium's SyncVectorEnv steps every copy on every call (a finished one resets and plays
    on), so a rollout, which lasts as long as its longest episode, paid for all n copies to
    the end: in a LunarLander generation of NEAT 85% of the Box2D steps were of finished
    episodes. Each copy keeps its own state and random generator, so skipping the finished
    ones changes no running episode: the returns are the same, number for number."""

    def __init__(self, env_id: str, n: int):
        import gymnasium as gym
        self.envs = [gym.make(env_id) for _ in range(n)]
        self.num_envs = n
        self._obs: np.ndarray | None = None

    def reset(self, seed: list[int]) -> tuple[np.ndarray, dict]:
        self._obs = np.stack([env.reset(seed=s)[0] for env, s in zip(self.envs, seed)])
        return self._obs, {}

    def step(self, action: np.ndarray, running: np.ndarray):
        """Step the copies where `running`; the others keep their last observation, reward 0."""
        n = self.num_envs
        reward, terminated, truncated = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        for i in np.flatnonzero(running).tolist():
            self._obs[i], reward[i], terminated[i], truncated[i], _ = self.envs[i].step(action[i])
        return self._obs, reward, terminated, truncated

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _release_freed_heap() -> None:
    """Hand the heap pages freed during a rollout back to the OS (glibc's malloc_trim).

    Every step frees a few hundred-kB temporaries (a population's activities, Hebbian
    pre/post products) between the small objects the envs keep; glibc then cannot shrink its
    heap, and a long LunarLander run of Hebbian controllers grew by ~150 MB a generation until
    it ran out of memory (23 GB after 122 generations) although nothing was still referenced.
    Trimming once per rollout keeps it flat. A no-op where the C library has no malloc_trim."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    """The C library's malloc_trim, or None where there is none."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


# Reset seeds: training episodes count up from a run's seed, validation episodes (choosing
# among candidates) from VALIDATION_SEED, held-out episodes (the final score) from HELD_OUT_SEED;
# the experiments refuse settings under which two of these ranges would meet.
VALIDATION_SEED = 5_000
HELD_OUT_SEED = 10_000


def evaluate_env(net, env_id: str, episodes: int = 100, seed: int = HELD_OUT_SEED,
                 max_steps: int | None = None) -> np.ndarray:
    """Returns of `net` (a GraphNet, or a one-member GraphBatch) over `episodes` held-out episodes
    (reset seeds seed .. seed + episodes - 1)."""
    from ...core.batch import GraphBatch
    pop = net if isinstance(net, GraphBatch) else GraphBatch.from_nets([net])
    fitness = EnvFitness(env_id, episodes=episodes, max_steps=max_steps, seed=seed)
    try:
        return fitness.returns(pop, seed)[0]
    finally:
        fitness.close()
