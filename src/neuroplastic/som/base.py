"""What GNG and DCS share: the unit graph, the training loop over epochs, metrics, history."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..core.validate import check_device, check_int
from ..errors import ConfigError
from . import metrics
from .graph import UnitGraph
from .inputs import check_samples


def merge_params(params: dict, base, kind: str, hint: str = ""):
    """`base` (a parameter dataclass) with `params` put in: λ may be given as lam, lambda_ or
    lambda (once); an unknown name is one ConfigError listing the known ones."""
    params = dict(params)
    for alias in ("lambda_", "lambda"):
        if alias in params:
            if "lam" in params:
                raise ConfigError(f"give λ once: lam={params['lam']!r} and {alias}={params[alias]!r}")
            params["lam"] = params.pop(alias)
    known = base.__dataclass_fields__
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(f"unknown {kind} parameter {unknown[0]!r}; known: {', '.join(known)}{hint}")
    return replace(base, **params)

PROBE_ROWS = 1000  # rows of the training data the history's quantisation error is measured on


class GrowingGraph:
    """Base of the growing models: subclasses set `value_dtype` (what an edge holds), and
    define `train_signals(xs)` (present rows once each, in order) and `_new_edge_value()`."""

    value_dtype = torch.int32
    name = "model"

    def __init__(self, dim: int, max_nodes: int, seed: int, device: str, dtype: torch.dtype):
        self.dim = check_int(dim, "dim", 1)
        self.max_nodes = check_int(max_nodes, "max_nodes", 2)
        self.seed = check_int(seed, "seed", 0, 2**63 - 1)  # torch.Generator's seeds are 64-bit
        self.device = check_device(device)
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype={dtype!r} must be torch.float32 or torch.float64")
        self.dtype = dtype

    def _reset(self) -> None:
        self.graph = UnitGraph(self.dim, self.max_nodes, value_dtype=self.value_dtype, device=self.device,
                               dtype=self.dtype)
        self.t = 0                   # signals processed
        self.history: list[dict] = []
        self._gen = torch.Generator().manual_seed(self.seed)

    # ----------------------------------------------------------------- the graph
    @property
    def n_nodes(self) -> int:
        return self.graph.n_alive

    @property
    def n_edges(self) -> int:
        return self.graph.n_edges

    @property
    def nodes(self) -> torch.Tensor:
        """(N, dim) positions of the live units, in slot order."""
        return self.graph.pos[self.graph.alive].clone()

    @property
    def edges(self) -> torch.Tensor:
        """(M, 2) pairs of indices into `nodes`, i < j."""
        return self.graph.compact()[1]

    def graph_stats(self) -> dict:
        """components, cycles (cyclomatic number) and mean degree of the learned graph."""
        return metrics.graph_stats(self.n_nodes, self.edges)

    def _samples(self, x, min_rows: int = 1) -> torch.Tensor:
        return check_samples(x, self.dim, min_rows=min_rows, device=self.device, dtype=self.dtype)

    def _fitted(self, what: str) -> None:
        if self.n_nodes == 0:
            raise ConfigError(f"{what} needs units: call fit(X) first")

    def quantization_error(self, x) -> float:
        """Mean Euclidean distance of the rows of x to their nearest unit."""
        self._fitted("quantization_error")
        return metrics.quantization_error(self.nodes, self._samples(x))

    def topographic_error(self, x) -> float:
        """Share of the rows of x whose nearest and second-nearest units share no edge."""
        self._fitted("topographic_error")
        nodes, edges, _ = self.graph.compact()
        return metrics.topographic_error(nodes, edges, self._samples(x))

    # ----------------------------------------------------------------- training
    def fit(self, x, epochs: int = 1, *, log_every: int | None = None, progress: bool = False):
        """Train from scratch for `epochs` passes over x (shuffled each pass): the same seed
        gives the same model."""
        self._reset()
        return self.partial_fit(x, epochs, log_every=log_every, progress=progress)

    def partial_fit(self, x, epochs: int = 1, *, log_every: int | None = None, progress: bool = False):
        """Continue training for `epochs` passes over x. History rows are written at the end of
        every epoch, and every `log_every` signals when given."""
        if hasattr(epochs, "__len__"):  # fit(X, y): labels where the epoch count goes
            raise ConfigError(f"{type(self).__name__}.fit(x, epochs) learns from x alone and takes no labels; "
                              "DCSGCS is the classifier that fits (x, y)")
        epochs = check_int(epochs, "epochs", 1)
        if log_every is not None:
            log_every = check_int(log_every, "log_every", 1)
        x = self._samples(x, min_rows=2)
        if self.graph.n_alive == 0:
            self._init_units(x)
        probe = x[torch.randperm(len(x), generator=self._gen)[:PROBE_ROWS].to(self.device)]
        if not self.history:
            self._log(probe)
        from tqdm.auto import trange
        for _ in trange(epochs, disable=not progress, desc=self.name, leave=False):
            order = torch.randperm(len(x), generator=self._gen).to(self.device)
            done = 0
            while done < len(x):
                stop = len(x) if log_every is None else min(len(x), done + log_every - self.t % log_every)
                self.train_signals(x[order[done:stop]])
                done = stop
                if log_every is not None and self.t % log_every == 0 and done < len(x):
                    self._log(probe)
            self._log(probe)
        return self

    def _init_units(self, x: torch.Tensor) -> None:
        """Two units at two distinct random data rows, joined by an edge (as minigng)."""
        a, b = torch.randperm(len(x), generator=self._gen)[:2].tolist()
        g = self.graph
        for row in (a, b):
            g.revive(g.free_slot(), x[row])
        g.add_edge(0, 1, self._new_edge_value())

    def set_graph(self, nodes, edges):
        """Start from these units (an (N, dim) array) and edges ((M, 2) node-index pairs), new
        edges as the algorithm makes them (GNG: age 0, DCS: strength 1), errors 0; training
        continues from here with partial_fit or train_signals."""
        self._reset()
        nodes = self._samples(nodes, min_rows=2).to(self.dtype)
        if len(nodes) > self.max_nodes:
            raise ConfigError(f"{len(nodes)} nodes exceed max_nodes={self.max_nodes}")
        e = torch.as_tensor(np.asarray(edges, dtype=np.int64).reshape(-1, 2), device=self.device)
        if len(e) and (bool((e < 0).any()) or bool((e >= len(nodes)).any()) or bool((e[:, 0] == e[:, 1]).any())):
            raise ConfigError(f"edges must be pairs of distinct node indices in 0..{len(nodes) - 1}")
        key = torch.unique(torch.minimum(e[:, 0], e[:, 1]) * len(nodes) + torch.maximum(e[:, 0], e[:, 1]))
        g = self.graph
        g.reserve(len(nodes))
        for row in nodes:
            g.revive(g.free_slot(), row)
        a, b = key // len(nodes), key % len(nodes)
        g.add_edges(a, b, torch.full((len(a),), self._new_edge_value(), dtype=g.value.dtype, device=self.device))
        return self

    def _log(self, probe: torch.Tensor) -> None:
        self.history.append({"step": self.t, "n_nodes": self.n_nodes, "n_edges": self.n_edges,
                             "qe": metrics.quantization_error(self.nodes, probe)})

    def to(self, device: str):
        self.device = check_device(device)
        self.graph.to(self.device)
        return self

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(dim={self.dim}, max_nodes={self.max_nodes}, nodes={self.n_nodes}, "
                f"edges={self.n_edges}, signals={self.t})")
