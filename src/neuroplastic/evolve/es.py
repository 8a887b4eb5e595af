"""Evolution strategies over a flat parameter vector, on the `cma` library (N. Hansen's CMA-ES).

`ES(n_params, popsize, sigma, seed)` asks for a (P, n) population of candidates, takes their
fitness (higher is better; cma minimises, so the sign is flipped here) and keeps the best
candidate seen. `method="sep-cma"` (the default) is the diagonal CMA-ES of Ros & Hansen 2008,
whose cost per generation is linear in n: the networks evolved here have thousands to tens of
thousands of parameters, where the full covariance (`method="cma"`, quadratic in n) is too
slow and learns too little per generation to pay for itself.

The candidates of a generation are one tensor, so fitness functions evaluate them together
(a GraphBatch, a vector env); nothing here loops over candidates.
"""
from __future__ import annotations

import contextlib
import math
import time

import numpy as np
import torch

from ..core.validate import check_choice, check_int, check_number
from ..errors import CheckpointError, ConfigError

METHODS = ("sep-cma", "cma")


class ES:
    """A CMA-ES maximiser: `ask() -> (P, n)`, `tell(candidates, fitness)`, or `run(fitness,
    generations)`. `x0`: the starting mean (zeros by default); `stds`: per-parameter multipliers
    of sigma (cma's CMA_stds), e.g. to search some parameters more gently than others."""

    def __init__(self, n_params: int, popsize: int = 64, sigma: float = 0.1, seed: int = 0,
                 method: str = "sep-cma", x0=None, stds=None):
        self.n_params = check_int(n_params, "n_params", 1)
        self.popsize = check_int(popsize, "popsize", 2)
        self.sigma = check_number(sigma, "sigma", above=0)
        self.seed = check_int(seed, "seed", 0, 2**32 - 2)  # cma takes seed + 1, below 2**32
        self.method = check_choice(method, "method", METHODS)
        x0 = np.zeros(self.n_params) if x0 is None else _numbers(x0, "x0")
        if x0.shape != (self.n_params,) or not np.isfinite(x0).all():
            raise ConfigError(f"x0 must be {self.n_params} finite numbers")
        self.stds = None
        if stds is not None:
            self.stds = _numbers(stds, "stds")
            if self.stds.shape != (self.n_params,) or not (np.isfinite(self.stds) & (self.stds > 0)).all():
                raise ConfigError(f"stds must be {self.n_params} finite numbers > 0")
        # cma draws from numpy's global generator seeded by "seed"; seed 0 means "random" to
        # it, so ours are shifted by one
        options = {"popsize": self.popsize, "seed": self.seed + 1, "verbose": -9, "maxiter": math.inf,
                   "tolfun": 0, "tolflatfitness": math.inf, "tolx": 0, "tolstagnation": math.inf,
                   "CMA_diagonal": self.method == "sep-cma"}
        if self.stds is not None:
            options["CMA_stds"] = self.stds
        self._x0, self._options = x0, options
        self._start()
        self.best, self.best_fitness = torch.as_tensor(x0, dtype=torch.float32), -math.inf
        self.history: list[dict] = []

    def _start(self) -> None:
        """A new search at generation 0 (cma's own object, and the generator it samples from)."""
        import cma
        # cma samples from numpy's global generator (and seeds it): the ES keeps that
        # generator's state as its own and swaps it in only while cma runs, so that neither
        # the caller's np.random nor another ES changes this one's numbers, or is changed by it
        self._numpy_state = np.random.get_state()
        with self._own_generator():
            self._cma = cma.CMAEvolutionStrategy(self._x0, self.sigma, self._options)
        self.generation = 0
        self._told: list[np.ndarray] = []  # every generation's fitness, what a checkpoint replays
        self._asked: np.ndarray | None = None

    def ask(self) -> torch.Tensor:
        """(popsize, n_params) float32 candidates of this generation."""
        if self._asked is None:
            with self._own_generator():
                self._asked = np.asarray(self._cma.ask())
        return torch.as_tensor(self._asked, dtype=torch.float32)

    def tell(self, candidates: torch.Tensor, fitness) -> dict:
        """Update the search distribution with the fitness of the candidates `ask` gave."""
        if self._asked is None:
            raise ConfigError("tell() without ask(): call ask() for this generation's candidates first")
        if tuple(getattr(candidates, "shape", ())) != self._asked.shape:
            raise ConfigError(f"tell() got candidates of shape {tuple(getattr(candidates, 'shape', ()))}; "
                              f"expected {self._asked.shape}, what ask() gave")
        try:
            fitness = np.asarray(torch.as_tensor(fitness, dtype=torch.float64).cpu())
        except (TypeError, ValueError, RuntimeError):
            raise ConfigError(f"fitness returned {type(fitness).__name__}; expected {self.popsize} numbers, "
                              "one per candidate") from None
        if fitness.shape not in ((self.popsize,), (self.popsize, 1)):
            raise ConfigError(f"fitness has shape {fitness.shape} ({fitness.size} values) for {self.popsize} "
                              "candidates; expected one value per candidate")
        fitness = fitness.reshape(-1)
        if not np.isfinite(fitness).all():
            raise ConfigError(f"fitness holds {int((~np.isfinite(fitness)).sum())} NaN or infinite values")
        with self._own_generator():
            self._cma.tell(list(self._asked), list(-fitness))
        self._told.append(fitness.copy())
        best = int(np.argmax(fitness))
        if fitness[best] > self.best_fitness:
            self.best_fitness = float(fitness[best])
            self.best = torch.as_tensor(self._asked[best], dtype=torch.float32)
        self._asked = None
        self.generation += 1
        return {"generation": self.generation, "best": float(fitness.max()), "mean": float(fitness.mean()),
                "best_ever": self.best_fitness, "sigma": float(self._cma.sigma)}

    @contextlib.contextmanager
    def _own_generator(self):
        outside = np.random.get_state()
        np.random.set_state(self._numpy_state)
        try:
            yield
        finally:
            self._numpy_state = np.random.get_state()
            np.random.set_state(outside)

    def mean(self) -> torch.Tensor:
        """The current mean of the search distribution."""
        return torch.as_tensor(self._cma.mean, dtype=torch.float32)

    def run(self, fitness, generations: int, target: float | None = None, progress: bool = False,
            on_generation=None) -> torch.Tensor:
        """Evolve until `generations` generations in all (a resumed or already run ES goes on
        to that total, not that many more), or until a generation's best reaches `target`;
        returns the best candidate seen. `fitness(candidates (P, n)) -> (P,)`; `on_generation(row)`
        is called after each generation with its history row (e.g. to checkpoint)."""
        from tqdm.auto import tqdm
        generations = check_int(generations, "generations", 0)
        target = None if target is None else check_number(target, "target")
        if not callable(fitness):
            raise ConfigError(f"fitness must be a callable fitness(candidates (P, n)) -> (P,), "
                              f"not {type(fitness).__name__}")
        bar = tqdm(total=generations, initial=min(self.generation, generations), desc="ES", leave=False,
                   disable=not progress)
        while self.generation < generations:
            started = time.perf_counter()
            candidates = self.ask()
            row = self.tell(candidates, fitness(candidates))
            row["wall_s"] = time.perf_counter() - started
            self.history.append(row)
            bar.update(1)
            bar.set_postfix(best=f"{row['best']:.1f}", mean=f"{row['mean']:.1f}")
            if on_generation is not None:
                on_generation(row)
            if target is not None and row["best"] >= target:
                break
        bar.close()
        return self.best

    # A checkpoint holds no cma object: cma's state is Python objects that only pickle could
    # store, and unpickling a file runs whatever code it names. It holds what the search was
    # told instead, every generation's fitness, and loading replays those generations from the
    # seed: cma is deterministic, so the replay asks the same candidates and ends in the same
    # state, which is checked against the saved mean, step size and generator state.
    def state_dict(self) -> dict:
        from ..core.checkpoint import numpy_rng_state
        with self._own_generator():
            numpy_rng = numpy_rng_state()
        told = np.stack(self._told) if self._told else np.zeros((0, self.popsize))
        return {"told": torch.from_numpy(told), "x0": torch.from_numpy(self._x0.copy()),
                "mean": torch.from_numpy(np.array(self._cma.mean, dtype=np.float64)),
                "step_size": float(self._cma.sigma), "numpy_rng": numpy_rng,
                "best": self.best, "best_fitness": self.best_fitness, "generation": self.generation,
                "history": list(self.history), "settings": self._settings()}

    def load_state_dict(self, state: dict) -> None:
        from ..core.checkpoint import numpy_rng_state
        if not isinstance(state, dict):
            raise CheckpointError(f"an ES state is a dict, not {type(state).__name__}")
        if "cma" in state:
            raise CheckpointError("this ES checkpoint holds a pickled cma object (an earlier format), which is "
                                  "never unpickled; rerun the job")
        if state.get("settings") != self._settings():
            raise CheckpointError(f"the saved ES has settings {state.get('settings')}, not {self._settings()}")
        missing = sorted({"told", "x0", "mean", "step_size", "numpy_rng", "best", "best_fitness", "generation",
                          "history"} - set(state))
        if missing:
            raise CheckpointError(f"the saved ES state lacks {', '.join(missing)}")
        generation, step_size, best_fitness, history = (state[k] for k in ("generation", "step_size",
                                                                             "best_fitness", "history"))
        generation = check_int(generation, "the saved ES's generation", 0, error=CheckpointError)
        for key, value in (("step_size", step_size), ("best_fitness", best_fitness)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise CheckpointError(f"the saved ES's {key}={value!r} is not a number")
        # run() logs a row a generation; generations told by hand (ask / tell) log none
        if not (isinstance(history, list) and len(history) <= generation and all(isinstance(r, dict) for r in history)):
            raise CheckpointError(f"the saved ES's history is not a list of at most {generation} generation rows")
        told = state["told"]
        if not (torch.is_tensor(told) and told.dim() == 2 and told.shape[1] == self.popsize
                and told.shape[0] == generation and torch.isfinite(told).all()):
            raise CheckpointError(f"the saved ES's fitness log is not {state['generation']} rows of "
                                  f"{self.popsize} finite numbers")
        for key in ("x0", "best"):
            if not (torch.is_tensor(state[key]) and state[key].shape == (self.n_params,)):
                raise CheckpointError(f"the saved ES's {key} is not {self.n_params} numbers")
        # the replay rebuilds the search in place: a refused state puts the old one back
        before = {k: getattr(self, k) for k in ("_x0", "_cma", "_told", "_asked", "_numpy_state", "generation")}
        self._x0 = state["x0"].double().numpy().copy()
        self._start()
        best, top = torch.as_tensor(self._x0, dtype=torch.float32), -math.inf  # as tell() keeps them
        with self._own_generator():
            for fitness in told.double().numpy():
                asked = np.asarray(self._cma.ask())
                self._cma.tell(list(asked), list(-fitness))
                self._told.append(fitness.copy())
                if fitness.max() > top:
                    top, best = float(fitness.max()), torch.as_tensor(asked[int(np.argmax(fitness))],
                                                                      dtype=torch.float32)
            replayed = numpy_rng_state()
        self.generation = len(self._told)
        mean = state["mean"]
        if not (torch.is_tensor(mean) and np.array_equal(np.asarray(self._cma.mean), mean.numpy())
                and float(self._cma.sigma) == float(step_size)
                and _same_generator(replayed, state["numpy_rng"])):
            for key, value in before.items():
                setattr(self, key, value)
            raise CheckpointError("the saved ES does not replay to its saved state (its settings, fitness log "
                                  "or cma version differ from the run that wrote it)")
        if not (top == float(best_fitness) and torch.equal(best, state["best"].to(torch.float32))):
            for key, value in before.items():
                setattr(self, key, value)
            raise CheckpointError("the saved ES's best candidate or best fitness is not the one its fitness log "
                                  "replays to")
        self.best, self.best_fitness = best, top
        self.history = list(history)

    def _settings(self) -> dict:
        settings = {"n_params": self.n_params, "popsize": self.popsize, "sigma": self.sigma, "seed": self.seed,
                    "method": self.method}
        if self.stds is not None:  # absent otherwise, so checkpoints written before stds existed still load
            settings["stds"] = self.stds.tolist()
        return settings


def _same_generator(a: dict, b) -> bool:
    """Two numpy generator states as numpy_rng_state() gives them are the same."""
    return (isinstance(b, dict) and set(a) == set(b) and torch.is_tensor(b["keys"])
            and torch.equal(a["keys"], b["keys"]) and all(a[k] == b[k] for k in a if k != "keys"))


def _numbers(values, name: str) -> np.ndarray:
    """`values` (array-like) as a flat float64 array, or a ConfigError naming `name`."""
    try:
        return np.asarray(torch.as_tensor(values).cpu() if torch.is_tensor(values) else values,
                          dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be numbers, not {values!r}"[:200]) from None
