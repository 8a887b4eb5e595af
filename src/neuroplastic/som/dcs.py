"""Dynamic Cell Structures (J. Bruske & G. Sommer, "Dynamic Cell Structures", NIPS 7, 1995; and
"Dynamic Cell Structure Learns Perfectly Topology Preserving Map", Neural Computation 7(4), 1995).

DCS is a topology representing network: a Kohonen-type rule moves the units (the best matching
unit by eps_b, its lateral neighbours by eps_n) and competitive Hebbian learning keeps a
lateral connection structure of real strengths C in [0, 1]: after every signal all strengths
decay by alpha, those below theta vanish, and the link between the best and second-best unit
is set to 1. Units collect a resource; every lam signals the units left without links are
removed and one unit is inserted between the unit of largest resource and its neighbour of
largest resource, and all resources decay by beta.

  DCS     unsupervised: the resource is the squared quantisation error.
  DCSGCS  supervised (DCS-GCS): every unit is a Gaussian RBF whose width is the mean distance
          to its neighbours (as in Fritzke's Growing Cell Structures); linear outputs learn by
          the delta rule, and the resource is the squared output error at the best unit.

The papers' bodies were not available; where they leave a choice open the defaults follow the
third-party code that cites the Neural Computation equations, and each choice is a parameter
(docs/classic.md lists them): `chl` "reset" (rule 2.2, the link set to 1) or "activity"
(rule 2.4, max(y_bmu * y_sec, old strength)), `decay` "global" (every link, every signal) or
"local" (only the best unit's links), `insert` "interpolate" (the resource-weighted point
between the two units) or "midpoint".

Global decay costs nothing per signal: an edge stores log C - t log alpha, so its strength at
signal t is exp(value + t log alpha) without touching it; an edge is dropped the first time it
is read below theta (the best unit's links every signal, all links at the end of a block).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from ..core.validate import check_choice, check_int, check_number
from ..errors import ConfigError
from .base import GrowingGraph, merge_params
from .inputs import check_labels


@dataclass(frozen=True)
class DCSParams:
    """DCS parameters; defaults from the third-party DCS demo code (the papers' are unknown)."""

    eps_b: float = 0.05        # step of the best matching unit
    eps_n: float = 0.005       # step of its lateral neighbours
    alpha: float = 0.9992      # decay of link strengths per signal
    theta: float = 0.001       # links weaker than this are removed
    lam: int = 1000            # λ: signals per block (one insertion and removal pass per block)
    beta: float = 0.95         # decay of every resource per block
    chl: str = "reset"         # "reset" (rule 2.2) or "activity" (rule 2.4)
    sigma: float = 1.0         # rule 2.4: activity y = exp(-||x - w||^2 / sigma)
    decay: str = "global"      # "global": all links decay; "local": only the best unit's links
    insert: str = "interpolate"  # "interpolate" (resource-weighted) or "midpoint"


@dataclass(frozen=True)
class GCSParams:
    """The supervised part of DCS-GCS."""

    eta: float = 0.05          # delta-rule step of the output weights
    width_scale: float = 1.0   # RBF width = width_scale * mean distance to the neighbours
    normalize: bool = False    # outputs from normalised RBF activities (sum 1) instead of plain


def check_dcs_params(params: dict, base: DCSParams | None = None, hint: str = "") -> DCSParams:
    p = merge_params(params, base or DCSParams(), "DCS", hint)
    return DCSParams(eps_b=check_number(p.eps_b, "eps_b", maximum=1, above=0),
                     eps_n=check_number(p.eps_n, "eps_n", maximum=1, above=0),
                     alpha=check_number(p.alpha, "alpha", maximum=1, above=0),
                     theta=check_number(p.theta, "theta", below=1, above=0),
                     lam=check_int(p.lam, "lam (λ)", 1),
                     beta=check_number(p.beta, "beta", maximum=1, above=0),
                     chl=check_choice(p.chl, "chl", ("reset", "activity")),
                     sigma=check_number(p.sigma, "sigma", above=0),
                     decay=check_choice(p.decay, "decay", ("global", "local")),
                     insert=check_choice(p.insert, "insert", ("interpolate", "midpoint")))


class DCS(GrowingGraph):
    """Unsupervised Dynamic Cell Structures on (n, dim) data; the interface of GNG."""

    value_dtype = torch.float64  # an edge holds log C - t log alpha (see the module text)
    name = "dcs"
    param_hint = ""  # more parameter names a subclass takes, for the unknown-name error

    def __init__(self, dim: int = 2, max_nodes: int = 200, seed: int = 0, *, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, **params):
        super().__init__(dim, max_nodes, seed, device, dtype)
        self.params = check_dcs_params(params, hint=self.param_hint)
        self._reset()

    def set_params(self, **params):
        self.params = check_dcs_params(params, self.params, self.param_hint)
        return self

    def get_params(self) -> dict:
        return asdict(self.params)

    # ----------------------------------------------------------------- link strengths
    @property
    def _global_rate(self) -> float:
        """log alpha per signal for global decay (0 for local decay, which edits the links)."""
        return math.log(self.params.alpha) if self.params.decay == "global" else 0.0

    def _stored(self, strength: float) -> float:
        """The value an edge stores for `strength` at the current signal."""
        return math.log(strength) - self.t * self._global_rate

    def strengths(self, ids: torch.Tensor) -> torch.Tensor:
        """The strength C of each edge in `ids` now."""
        return torch.exp(self.graph.value[ids] + self.t * self._global_rate)

    def _new_edge_value(self) -> float:
        return self._stored(1.0)

    def _drop_weak(self, ids: torch.Tensor) -> None:
        weak = ids[self.graph.value[ids] + self.t * self._global_rate < math.log(self.params.theta)]
        if len(weak):
            self.graph.remove_edges(weak)

    # ----------------------------------------------------------------- the algorithm
    def train_signals(self, xs: torch.Tensor) -> None:
        """Present the rows of xs once each, in order, with a block end every λ signals."""
        for x in xs:
            self.step(x)
            if self.t % self.params.lam == 0:
                self.end_block()

    def step(self, x: torch.Tensor, quantisation_resource: bool = True) -> tuple[int, torch.Tensor]:
        """One signal: competitive Hebbian links, Kohonen move, resource (the squared distance to
        the best unit, unless the supervised variant adds its own). Returns (bmu, the squared
        distances of x to every slot, measured before the move)."""
        g, p = self.graph, self.params
        self.t += 1
        pos = g.pos
        diff = pos - x
        dist2 = (diff * diff).sum(1).masked_fill_(~g.alive, math.inf)
        (d1, d2), (s1, s2) = (v.tolist() for v in dist2.topk(2, largest=False))
        ids, nb = g.neighbours(s1)
        old = None
        if p.chl == "activity":
            hit = torch.nonzero(nb == s2)
            old = float(torch.exp(g.value[ids[hit]] + (self.t - 1) * self._global_rate).sum()) if len(hit) else 0.0
        if p.decay == "local":                                      # C <- alpha C (s1's links)
            g.value[ids] += math.log(p.alpha)
        self._drop_weak(ids)                                        # links below theta vanish
        ids, nb = g.neighbours(s1)
        strength = 1.0                                              # rule 2.2; 2.4 keeps the
        if p.chl == "activity":                                     # larger of y_bmu y_sec and
            strength = max(math.exp(-(d1 + d2) / p.sigma), old)     # the old strength
        hit = torch.nonzero(nb == s2)
        if len(hit):
            g.value[ids[hit]] = self._stored(strength)
        elif strength >= p.theta:
            g.add_edge(s1, s2, self._stored(strength))
            ids, nb = g.neighbours(s1)
        pos[s1] -= p.eps_b * diff[s1]                               # Kohonen move: bmu and its
        pos.index_add_(0, nb, diff[nb], alpha=-p.eps_n)             # lateral neighbours
        if quantisation_resource:
            g.error[s1] += d1                                       # resource
        return s1, dist2

    def end_block(self) -> None:
        """Every λ signals: weak links out, units without links out, one insertion, decay."""
        g, p = self.graph, self.params
        self._drop_weak(g.live_edges()[0])
        g.kill(torch.nonzero(g.alive & (g.degree == 0)).squeeze(1))
        if g.n_alive < self.max_nodes and g.n_alive >= 2:
            self.insert_unit()
        g.error.mul_(p.beta)

    def insert_unit(self) -> int | None:
        """A unit between l (largest resource) and l's neighbour n of largest resource, at the
        resource-weighted point w_l + γ (w_n - w_l), γ = τ_n / (τ_l + τ_n); l loses (1-γ)τ_l/2
        and n loses γτ_n/2, which the new unit gets. Returns the new unit's slot."""
        g = self.graph
        l_ = int(g.error.masked_fill(~g.alive, -math.inf).argmax())
        ids, nb = g.neighbours(l_)
        if not len(ids):
            return None
        k = int(g.error[nb].argmax())
        n, ln = int(nb[k]), int(ids[k])
        tau_l, tau_n = float(g.error[l_]), float(g.error[n])
        gamma = tau_n / (tau_l + tau_n) if self.params.insert == "interpolate" and tau_l + tau_n > 0 else 0.5
        r = g.free_slot()
        g.revive(r, g.pos[l_] + gamma * (g.pos[n] - g.pos[l_]))
        g.remove_edge(ln)
        g.add_edge(l_, r, self._stored(1.0))
        g.add_edge(n, r, self._stored(1.0))
        loss_l, loss_n = 0.5 * (1 - gamma) * tau_l, 0.5 * gamma * tau_n
        g.error[l_] -= loss_l
        g.error[n] -= loss_n
        g.error[r] = loss_l + loss_n
        self._inserted(l_, n, r, gamma)
        return r

    def _inserted(self, l_: int, n: int, r: int, gamma: float) -> None:
        """Hook for the supervised variant: what else a new unit takes from l and n."""


class DCSGCS(DCS):
    """DCS-GCS: supervised DCS with Gaussian RBF units and linear outputs (delta rule).

    clf = DCSGCS(dim=13, max_nodes=60, seed=0, lam=200, eta=0.05)
    clf.fit(X, y, epochs=30); clf.predict(X); clf.score(X, y)
    """

    name = "dcs-gcs"
    param_hint = ", " + ", ".join(GCSParams.__dataclass_fields__)

    def __init__(self, dim: int = 2, max_nodes: int = 200, seed: int = 0, *, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, **params):
        gcs = {k: params.pop(k) for k in list(params) if k in GCSParams.__dataclass_fields__}
        super().__init__(dim, max_nodes, seed, device=device, dtype=dtype, **params)
        p = replace(GCSParams(), **gcs)
        if not isinstance(p.normalize, bool):
            raise ConfigError(f"normalize={p.normalize!r} must be true or false")
        self.gcs = GCSParams(eta=check_number(p.eta, "eta", above=0),
                             width_scale=check_number(p.width_scale, "width_scale", above=0),
                             normalize=p.normalize)
        self.classes: np.ndarray | None = None

    def get_params(self) -> dict:
        return {**asdict(self.params), **asdict(self.gcs)}

    def _reset(self) -> None:
        super()._reset()
        self.n_out = 0

    # ----------------------------------------------------------------- outputs
    def _activity(self, dist2: torch.Tensor) -> torch.Tensor:
        """RBF activities of every slot for squared distances (..., cap); 0 for dead slots."""
        g = self.graph
        width = g.extra["width"]
        phi = torch.exp(-dist2 / (width * width).clamp_min(1e-12))
        phi = phi * g.alive
        if self.gcs.normalize:
            phi = phi / phi.sum(-1, keepdim=True).clamp_min(1e-30)
        return phi

    def _update_widths(self) -> None:
        """Width of every unit = width_scale * mean length of its links (GCS); a unit without
        links takes the mean width."""
        g = self.graph
        _, u, v = g.live_edges()
        length = (g.pos[u] - g.pos[v]).norm(dim=1)
        total = torch.zeros(g.capacity, dtype=g.pos.dtype, device=g.pos.device)
        total.index_add_(0, u, length).index_add_(0, v, length)
        count = g.degree.to(g.pos.dtype)
        width = self.gcs.width_scale * total / count.clamp_min(1)
        has = (count > 0) & g.alive
        fallback = width[has].mean() if bool(has.any()) else torch.ones((), dtype=width.dtype, device=width.device)
        g.extra["width"] = torch.where(has, width, fallback)

    def _inserted(self, l_: int, n: int, r: int, gamma: float) -> None:
        out = self.graph.extra["out"]
        out[r] = out[l_] + gamma * (out[n] - out[l_])

    def decision_function(self, x) -> torch.Tensor:
        """(n, classes) outputs of the linear layer over the RBF activities."""
        x = self._samples(x)
        g = self.graph
        outs = []
        for start in range(0, len(x), 4096):
            block = torch.cdist(x[start:start + 4096], g.pos, compute_mode="donot_use_mm_for_euclid_dist")  # exact
            dist2 = block.pow(2).masked_fill_(~g.alive, math.inf)
            outs.append(self._activity(dist2) @ g.extra["out"])
        return torch.cat(outs)

    def predict(self, x) -> np.ndarray:
        if self.classes is None:
            raise ConfigError("predict needs a fitted DCSGCS; call fit(X, y) first")
        return self.classes[self.decision_function(x).argmax(1).cpu().numpy()]

    def score(self, x, y) -> float:
        """Accuracy of predict(x) against the labels y."""
        y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
        pred = self.predict(x)
        if len(y) != len(pred):
            raise ConfigError(f"y has {len(y)} labels for {len(pred)} samples")
        return float((pred == y).mean())

    # ----------------------------------------------------------------- training
    def fit(self, x, y, epochs: int = 1, *, x_val=None, y_val=None, progress: bool = False) -> DCSGCS:
        """Train from scratch on (x, y) for `epochs` shuffled passes; one history row per epoch
        (signals, units, links, training accuracy, and validation accuracy when given)."""
        if (x_val is None) != (y_val is None):
            raise ConfigError("validation needs both x_val and y_val")
        self._reset()
        x = self._samples(x, min_rows=2)
        ids, self.classes = check_labels(y, len(x))
        self.n_out = len(self.classes)
        targets = torch.nn.functional.one_hot(torch.as_tensor(ids), self.n_out).to(self.dtype).to(self.device)
        return self.partial_fit(x, y, epochs, x_val=x_val, y_val=y_val, progress=progress, _targets=targets)

    def partial_fit(self, x, y, epochs: int = 1, *, x_val=None, y_val=None, progress: bool = False,
                    _targets: torch.Tensor | None = None) -> DCSGCS:
        epochs = check_int(epochs, "epochs", 1)
        x = self._samples(x, min_rows=2)
        if _targets is None:
            if self.classes is None:
                raise ConfigError("partial_fit continues a fitted DCSGCS; call fit(X, y) first")
            ids, classes = check_labels(y, len(x))
            index = np.searchsorted(self.classes, classes)
            if (index >= len(self.classes)).any() or (self.classes[index.clip(0, len(self.classes) - 1)]
                                                      != classes).any():
                raise ConfigError("y holds classes the model was not fitted on")
            _targets = torch.nn.functional.one_hot(torch.as_tensor(index[ids]), self.n_out).to(self.dtype)
            _targets = _targets.to(self.device)
        g = self.graph
        if g.n_alive == 0:
            g.add_field("out", torch.zeros(g.capacity, self.n_out, dtype=self.dtype, device=self.device))
            g.add_field("width", torch.ones(g.capacity, dtype=self.dtype, device=self.device))
            self._init_units(x)
            self._update_widths()
        from tqdm.auto import trange
        for _ in trange(epochs, disable=not progress, desc=self.name, leave=False):
            order = torch.randperm(len(x), generator=self._gen).to(self.device)
            for k in order:
                self._supervised_step(x[k], _targets[k])
            row = {"step": self.t, "n_nodes": self.n_nodes, "n_edges": self.n_edges,
                   "train_accuracy": self.score(x.cpu(), self.classes[_targets.argmax(1).cpu().numpy()])}
            if x_val is not None:
                row["val_accuracy"] = self.score(x_val, y_val)
            self.history.append(row)
        return self

    def _supervised_step(self, x: torch.Tensor, target: torch.Tensor) -> None:
        g = self.graph
        s1, dist2 = self.step(x, quantisation_resource=False)
        phi = self._activity(dist2)
        out = g.extra["out"]
        err = target - phi @ out                                    # delta rule on the outputs
        out.addr_(phi, err, alpha=self.gcs.eta)
        g.error[s1] += float((err * err).sum())                     # resource: output error
        if self.t % self.params.lam == 0:
            self.end_block()
            self._update_widths()
