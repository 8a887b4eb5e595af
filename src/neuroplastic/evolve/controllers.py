"""Populations of controllers of one topology, evaluated together in a gymnasium env, for an
evolution strategy: each candidate is a flat parameter vector, a generation one tensor.

* `HebbianControllers` (Najarro & Risi 2020): a candidate is a learning rule, five coefficients
  [η, A, B, C, D] per synapse. In every episode the weights start random, U(-init, init), and
  change only by the ABCD rule (`npl.rules.Hebbian`) after every env step: no gradient, no
  optimizer. The fitness is what the network learns to do within its lifetime.
* `StaticControllers`: the baseline, a candidate is the weights themselves, fixed for life.

Both run the P candidates x B episodes as one GraphBatch (one row per candidate and episode:
plastic weights diverge per episode) stepped by P*B copies of the env (`EnvFitness`), so
a generation is one batched rollout with no Python loop over candidates, synapses or episodes.
Every candidate of a generation meets the same B episodes (env seeds and, for Hebbian
networks, the same initial weights), so they are compared on equal terms. With
`vectorization="vector"` one reset seed starts all P*B copies, so each row plays an episode of
its own, and a Hebbian row's initial weights are drawn from that row's env seed.
"""
from __future__ import annotations

import abc

import numpy as np
import torch

from ..core.batch import GraphBatch
from ..core.graph import GraphNet
from ..core.trace import BatchTrace
from ..core.validate import check_int, check_number
from ..errors import ConfigError
from ..rules.hebbian import COEFFICIENTS, Hebbian
from .neat.envs import HELD_OUT_SEED, EnvFitness


class Controllers(abc.ABC):
    """The shared part: a template MLP (tanh hidden layers, no biases, linear outputs; Discrete
    actions take the argmax, Box actions the clipped output) and the batched rollout. A
    subclass says how many numbers a candidate has and what population plays its episodes."""

    def __init__(self, env_id: str, hidden=(32, 32), episodes: int = 1, max_steps: int | None = None,
                 seed: int = 0, vectorization: str = "sync"):
        if not isinstance(env_id, str):
            raise ConfigError(f"env_id must be a gymnasium id such as 'CartPole-v1', not {env_id!r}")
        self.env_id = env_id
        self.episodes = check_int(episodes, "episodes", 1)
        self.seed = check_int(seed, "seed", 0)
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
            raise ConfigError(f"hidden must be a list of layer widths such as [32, 32] ([] for none), not {hidden!r}")
        hidden = [check_int(h, "a hidden layer's width", 1) for h in hidden]
        self.env = EnvFitness(env_id, episodes=self.episodes, max_steps=max_steps, seed=seed,
                              vectorization=vectorization)
        self.template = GraphNet.mlp(self.env.n_in, hidden, self.env.n_out, activation="tanh",
                                     output_activation="identity", seed=seed)
        self.src, self.dst, _ = self.template.edges()
        self.n_synapses = len(self.src)
        self.generation = 0
        self._one = GraphBatch.from_nets([self.template])

    @property
    @abc.abstractmethod
    def n_params(self) -> int:
        """Numbers in one candidate."""

    def candidates(self, candidates, one: bool = False) -> torch.Tensor:
        """`candidates` as a float32 (P, n_params) tensor (`one`: a single candidate, (n_params,)
        or (1, n_params)), or a ConfigError saying what was expected."""
        try:
            t = torch.as_tensor(np.asarray(candidates, dtype=np.float32) if not torch.is_tensor(candidates)
                                else candidates, dtype=torch.float32)
        except (TypeError, ValueError):
            t = None
        if one and t is not None and t.dim() == 1:
            t = t[None]
        if t is None or t.dim() != 2 or t.shape[1] != self.n_params or (one and len(t) != 1):
            shape = "(n_params,)" if one else "(P, n_params)"
            got = f"shape {tuple(t.shape)}" if t is not None else type(candidates).__name__
            raise ConfigError(f"expected {'a candidate' if one else 'candidates'} of shape {shape} with "
                              f"n_params = {self.n_params}; got {got}")
        return t

    def population(self, weight: torch.Tensor) -> GraphBatch:
        """A GraphBatch of len(weight) copies of the template with these (R, n_synapses)
        weights and zero biases."""
        R, one = len(weight), self._one
        live = one.edge_alive[0]
        full = weight.new_zeros(R, one.edge_capacity)
        full[:, live] = weight
        rows = [t.expand(R, -1) for t in (one.src, one.dst)]
        return GraphBatch(one.n_in, one.n_out, *rows, full, one.edge_alive.expand(R, -1),
                          torch.zeros(R, one.neuron_capacity), one.activation.expand(R, -1),
                          one.neuron_alive.expand(R, -1))

    def check(self, candidates: torch.Tensor) -> torch.Tensor:
        candidates = self.candidates(candidates)
        if not len(candidates):
            raise ConfigError(f"candidates of shape {tuple(candidates.shape)}; expected (P >= 1, {self.n_params})")
        if not bool(torch.isfinite(candidates).all()):
            raise ConfigError("candidates hold NaN or infinite values")
        return candidates

    def __call__(self, candidates: torch.Tensor) -> torch.Tensor:
        """(P,) mean return of each candidate over this generation's B episodes; then the next
        generation gets the next B episodes."""
        generation = check_int(self.generation, "generation", 0)  # a resumed run sets it by hand
        first = self.seed + generation * self.episodes
        self.generation = generation + 1
        return torch.as_tensor(self.returns(candidates, first).mean(1))

    def returns(self, candidates: torch.Tensor, first_seed: int, episodes: int | None = None) -> np.ndarray:
        """(P, B) returns over the episodes first_seed .. first_seed + B - 1."""
        candidates = self.check(candidates)
        first_seed = check_int(first_seed, "seed", 0)  # gymnasium's reset seeds are >= 0
        B = self.episodes if episodes is None else check_int(episodes, "episodes", 1)
        env = self.env if B == self.episodes else EnvFitness(self.env_id, episodes=B, max_steps=self.env.max_steps,
                                                             seed=first_seed, vectorization=self.env.vectorization)
        try:
            with torch.no_grad():
                return env.returns(self.policies(candidates, first_seed, B), first_seed)
        finally:
            if env is not self.env:
                env.close()

    def evaluate(self, candidate: torch.Tensor, episodes: int = 100, seed: int = HELD_OUT_SEED) -> np.ndarray:
        """Returns of one candidate over `episodes` held-out episodes."""
        return self.returns(self.candidates(candidate, one=True), seed, episodes)[0]

    @abc.abstractmethod
    def policies(self, candidates: torch.Tensor, first_seed: int, episodes: int):
        """What EnvFitness steps for these candidates: called with (P, B, n_in) observations,
        returns (P, B, n_out) actions' outputs (a GraphBatch, or a wrapper that also learns)."""

    def close(self) -> None:
        self.env.close()


class StaticControllers(Controllers):
    """A candidate is the network's weights (one per synapse), fixed for the whole episode."""

    @property
    def n_params(self) -> int:
        return self.n_synapses

    def policies(self, candidates, first_seed, episodes):
        return self.population(candidates)  # each member plays its B episodes with the same weights

    def network(self, candidate) -> GraphNet:
        """The candidate as a GraphNet."""
        return self.population(self.candidates(candidate, one=True)).to_net(0)


class HebbianControllers(Controllers):
    """A candidate is a learning rule: [η, A, B, C, D] for every synapse (5 * n_synapses
    numbers, coefficient-major). `init`: the initial weights of every episode are U(-init,
    init), redrawn per episode, the same for every candidate. `normalise="layer"`: each layer
    divided by its largest |w| after every update (the authors' code for gym tasks)."""

    def __init__(self, env_id: str, hidden=(32, 32), episodes: int = 1, max_steps: int | None = None,
                 seed: int = 0, init: float = 0.1, normalise: str | None = "layer", clip: float | None = None,
                 vectorization: str = "sync"):
        super().__init__(env_id, hidden, episodes, max_steps, seed, vectorization)
        self.init = check_number(init, "init", 0)
        self.normalise, self.clip = normalise, clip
        Hebbian(normalise=normalise, clip=clip)  # bad values fail here, not in the first rollout

    @property
    def n_params(self) -> int:
        return len(COEFFICIENTS) * self.n_synapses

    def initial_weights(self, first_seed: int, episodes: int) -> torch.Tensor:
        """(B, n_synapses): episode b's random start, a function of its env seed only."""
        rows = [torch.rand(self.n_synapses, generator=torch.Generator().manual_seed(first_seed + b))
                for b in range(episodes)]
        return (torch.stack(rows) * 2 - 1) * self.init

    def rule(self, candidates: torch.Tensor, rows_per_candidate: int = 1) -> Hebbian:
        """The Hebbian rule of these candidates for a batch with `rows_per_candidate` rows each."""
        candidates = self.candidates(candidates)
        P = len(candidates)
        edge_capacity = self._one.edge_capacity
        live = self._one.edge_alive[0]
        per_synapse = candidates.view(P, len(COEFFICIENTS), self.n_synapses)
        values = {}
        for k, name in enumerate(COEFFICIENTS):
            full = candidates.new_zeros(P, edge_capacity)
            full[:, live] = per_synapse[:, k]
            values[name] = full.repeat_interleave(rows_per_candidate, 0)
        return Hebbian(**values, normalise=self.normalise, clip=self.clip)

    def policies(self, candidates, first_seed, episodes):
        P = len(candidates)
        if self.env.vectorization == "vector":  # one reset seed starts row r at first_seed + r; its weights too
            weight = self.initial_weights(first_seed, P * episodes)
        else:
            weight = self.initial_weights(first_seed, episodes).repeat(P, 1)  # row p*B + b: episode b
        return PlasticPopulation(self.population(weight), self.rule(candidates, episodes), P, episodes)


class EpisodeRows:
    """P candidates x B episodes as the P*B rows of one GraphBatch `batch`, stepped by
    EnvFitness as if it were a P-member GraphBatch fed (P, B, n_in) observations. Subclasses
    change the rows while they act (a learning rule, an editor)."""

    batch: GraphBatch
    P: int
    B: int

    @property
    def weight(self) -> torch.Tensor:
        return self.batch.weight

    def __len__(self) -> int:
        return self.P

    def act(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward of every row: (P, B, n_out) outputs and the (P*B, 1, N_cap) activity."""
        y, activity = self.batch(x.reshape(self.P * self.B, 1, self.batch.n_in), return_activity=True)
        return y.reshape(self.P, self.B, self.batch.n_out), activity


class PlasticPopulation(EpisodeRows):
    """Rows whose weights a rule changes after every forward."""

    def __init__(self, batch: GraphBatch, rule: Hebbian, P: int, B: int):
        self.batch, self.rule, self.P, self.B = batch, rule, P, B
        self.n_in, self.n_out = batch.n_in, batch.n_out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y, activity = self.act(x)
        self.rule.observe(self.batch, BatchTrace(activity))
        self.rule.update(self.batch)  # the next step acts with the changed weights
        return y
