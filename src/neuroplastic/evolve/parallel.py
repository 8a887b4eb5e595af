"""An ES fitness over a population of controllers, evaluated in-process or in chunks on Ray.

`PopulationFitness(cls, settings, chunks)` builds `cls(**settings)` (a `Controllers`
subclass) and is called with a generation's (P, n) candidates; it returns their (P,) mean
returns over that generation's B episodes (reset seeds seed + g*B + b, the same for every
candidate), then moves on to the next episodes. With `chunks` > 1 and Ray running, the
candidates are split into that many contiguous chunks, each a Ray task that evaluates its
chunk as one GraphBatch rollout; a worker process keeps the controllers it built for the next
generation's task. A candidate's rollout depends only on itself and the episode seeds, so the
result is the same for any number of chunks (tests/test_self_editing.py checks it).
"""
from __future__ import annotations

import inspect

import numpy as np
import torch

from ..core.validate import check_int
from ..errors import ConfigError

_BUILT: dict = {}  # controllers a process built, by their settings (reused across Ray tasks)


def _controllers(cls, settings: dict):
    key = (cls.__module__, cls.__qualname__, repr(sorted(settings.items())))
    if key not in _BUILT:
        _BUILT[key] = cls(**settings)
    return _BUILT[key]


def chunk_returns(cls, settings: dict, candidates: torch.Tensor, first_seed: int) -> np.ndarray:
    """(p, B) returns of a chunk of candidates (the body of the Ray task)."""
    torch.set_num_threads(1)
    return _controllers(cls, settings).returns(candidates, first_seed)


def ray_chunks() -> int:
    """CPUs of the running Ray cluster (the runner starts one for --workers N), else 1."""
    try:
        import ray
    except ImportError:
        return 1
    return int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else 1


class PopulationFitness:
    def __init__(self, cls, settings: dict, chunks: int = 1):
        self.cls, self.settings = cls, dict(settings)
        self.chunks = check_int(chunks, "chunks", 1)
        takes = inspect.signature(cls).parameters
        unknown = sorted(set(self.settings) - set(takes))
        if unknown:  # named here, not as a TypeError from the constructor (or on every Ray worker)
            raise ConfigError(f"{cls.__name__} takes no {', '.join(unknown)}; it takes {', '.join(takes)}")
        self.controllers = cls(**self.settings)
        self.generation = 0
        self._remote = None

    @property
    def n_params(self) -> int:
        return self.controllers.n_params

    def __call__(self, candidates: torch.Tensor) -> torch.Tensor:
        c = self.controllers
        first = c.seed + self.generation * c.episodes
        self.generation += 1
        return torch.as_tensor(self.returns(candidates, first).mean(1))

    def returns(self, candidates: torch.Tensor, first_seed: int) -> np.ndarray:
        candidates = self.controllers.check(candidates)
        parts = min(self.chunks, len(candidates))
        if parts == 1:
            return self.controllers.returns(candidates, first_seed)
        import ray
        if self._remote is None:
            self._remote = ray.remote(num_cpus=1)(chunk_returns)
        futures = [self._remote.remote(self.cls, self.settings, chunk, first_seed)
                   for chunk in candidates.tensor_split(parts)]
        return np.concatenate(ray.get(futures))

    def close(self) -> None:
        self.controllers.close()
