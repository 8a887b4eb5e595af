"""Growing Neural Gas (B. Fritzke, "A Growing Neural Gas Network Learns Topologies", NIPS 7, 1995).

A graph of units in input space. Every input signal x moves its nearest unit s1 (by eps_b)
and s1's graph neighbours (by eps_n) towards x, ages s1's edges, joins s1 to the second
nearest unit s2 (competitive Hebbian learning), drops edges older than a_max and units left
without edges, and adds ||x - w_s1||^2 to s1's error. Every lam (λ) signals a unit is inserted
halfway between the unit q of largest error and q's neighbour f of largest error; q's and f's
errors shrink by alpha and every error decays by d after each signal.

Two modes, one model:
  * "sequential": the paper's algorithm, one signal at a time in the NIPS order (steps 2-9 of
    docs/classic.md), vectorised over the units: one distance op to all units per signal.
  * "batched": B signals against the same frozen graph, with the per-signal rules summed into
    one update per batch (what differs is listed in `GNG.batched_step` and docs/classic.md).
    The speed comes from here; its quantisation error is measured against the sequential mode.

Parameters are Fritzke's names: eps_b, eps_n, a_max, lam (λ; `lambda` is a Python keyword, so
also `lambda_=` or `**{"lambda": 100}`), alpha, d; the defaults are the paper's.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ..core.validate import check_choice, check_int, check_number
from .base import GrowingGraph, merge_params

MODES = ("batched", "sequential")
# batch_size="auto": as many signals as there are units (about one win per unit and batch),
# at least MIN_AUTO_BATCH and at most MAX_AUTO_BATCH
MIN_AUTO_BATCH, MAX_AUTO_BATCH = 16, 1024


@dataclass(frozen=True)
class GNGParams:
    """Fritzke's parameters (NIPS 1995 defaults) and how the model runs them."""

    eps_b: float = 0.2        # step of the winner s1 towards the signal
    eps_n: float = 0.006      # step of s1's topological neighbours
    a_max: int = 50           # edges older than this are removed (strictly older, as minigng)
    lam: int = 100            # λ: a unit is inserted every lam signals
    alpha: float = 0.5        # error reduction of q and f at an insertion
    d: float = 0.995          # decay of every error after each signal
    mode: str = "batched"     # "batched" or "sequential"
    batch_size: int | str = "auto"   # batched mode: signals per batch; "auto": the number of units, 16..1024


def check_params(params: dict, base: GNGParams | None = None) -> GNGParams:
    """GNGParams from keyword arguments, each validated (one ConfigError that names it)."""
    p = merge_params(params, base or GNGParams(), "GNG", hint=" (and lambda_)")
    batch = p.batch_size if p.batch_size == "auto" else check_int(p.batch_size, "batch_size", 1)
    return GNGParams(eps_b=check_number(p.eps_b, "eps_b", maximum=1, above=0),
                     eps_n=check_number(p.eps_n, "eps_n", maximum=1, above=0),
                     a_max=check_int(p.a_max, "a_max", 0),
                     lam=check_int(p.lam, "lam (λ)", 1),
                     alpha=check_number(p.alpha, "alpha", maximum=1, above=0),
                     d=check_number(p.d, "d", maximum=1, above=0),
                     mode=check_choice(p.mode, "mode", MODES), batch_size=batch)


def _remaining(eps: float, pulls: torch.Tensor) -> torch.Tensor:
    """(1 - eps)^pulls: the share of a unit's distance to the target left after `pulls` steps."""
    if eps >= 1:
        return (pulls == 0).to(pulls.dtype)
    return torch.exp(pulls * math.log1p(-eps))


class GNG(GrowingGraph):
    """Growing Neural Gas on (n, dim) data, up to `max_nodes` units, on CPU or CUDA.

    gng = GNG(dim=2, max_nodes=200, seed=0, eps_b=0.2, lam=100, mode="batched", device="cpu")
    gng.fit(X, epochs=1)            # from scratch (same seed, same result); partial_fit continues
    gng.nodes, gng.edges            # (N, dim) positions, (M, 2) node-index pairs (i < j)
    gng.quantization_error(X), gng.topographic_error(X), gng.n_nodes, gng.n_edges, gng.history
    """

    value_dtype = torch.int32  # an edge holds its age
    name = "gng"

    def __init__(self, dim: int = 2, max_nodes: int = 200, seed: int = 0, *, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, **params):
        super().__init__(dim, max_nodes, seed, device, dtype)
        self.params = check_params(params)
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._decay_cache: dict[int, torch.Tensor] = {}

    def set_params(self, **params) -> GNG:
        """Change parameters between fits (validated as in the constructor)."""
        self.params = check_params(params, self.params)
        self._decay_cache = {}
        return self

    def get_params(self) -> dict:
        return asdict(self.params)

    def _new_edge_value(self) -> int:
        return 0  # age

    def train_signals(self, xs: torch.Tensor) -> None:
        """Present the rows of xs once each, in order (no shuffling, no history): the hot loop."""
        if self.params.mode == "sequential":
            for x in xs:
                self.sequential_step(x)
            return
        done = 0
        while done < len(xs):
            size = self.params.batch_size
            if size == "auto":
                size = min(MAX_AUTO_BATCH, max(MIN_AUTO_BATCH, self.graph.n_alive))
            self.batched_step(xs[done:done + size])
            done += size

    # ----------------------------------------------------------------- the algorithm
    def sequential_step(self, x: torch.Tensor) -> None:
        """One signal, the NIPS steps 2-9 exactly."""
        g, p = self.graph, self.params
        self.t += 1
        pos, age = g.pos, g.value
        diff = pos - x
        dist2 = (diff * diff).sum(1).masked_fill_(~g.alive, math.inf)
        s1, s2 = dist2.topk(2, largest=False).indices.tolist()        # 2. nearest, second nearest
        ids, nb = g.neighbours(s1)
        age[ids] += 1                                                  # 3. age the edges of s1
        g.error[s1] += dist2[s1]                                       # 4. error, before the move
        pos[s1] -= p.eps_b * diff[s1]                                  # 5. move s1 and neighbours
        pos.index_add_(0, nb, diff[nb], alpha=-p.eps_n)
        hit = torch.nonzero(nb == s2)                                  # 6. s1-s2 edge: refresh or
        if len(hit):                                                   #    create, at age 0
            age[ids[hit]] = 0
        else:
            g.add_edge(s1, s2, 0)
        expired = ids[age[ids] > p.a_max]                              # 7. drop old edges and the
        if len(expired):                                               #    units they leave bare
            g.remove_edges(expired)
            ends = nb[torch.isin(ids, expired)]
            g.kill(ends[g.degree[ends] == 0])
        if self.t % p.lam == 0 and g.n_alive < self.max_nodes:         # 8. insert every λ signals
            self.insert_unit()
        g.error.mul_(p.d)                                              # 9. decay every error

    def batched_step(self, xb: torch.Tensor) -> None:
        """B signals against the graph as it is at the start of the batch.

        What differs from B sequential steps (docs/classic.md has the measurements):
          * winners s1, s2 of all B signals come from the same frozen positions and edges;
          * a unit pulled k times (as winner with eps_b, as neighbour with eps_n) moves to the
            eps-weighted mean of those signals by 1 - prod(1 - eps): the total pull of k
            sequential steps, order-free; with one pull it is the sequential step exactly;
          * an edge ages by the number of times either end won, refreshed edges end at age 0,
            and expiry is checked once, at the end of the batch;
          * errors decay exactly (a signal's error by d for every later signal of the batch);
          * the insertions due in the batch (every λ signals) happen at its end, one after
            another, each as in the sequential mode.
        """
        g, p = self.graph, self.params
        B, cap = len(xb), g.capacity
        pos = g.pos
        # the expansion ||w||^2 - 2 x.w rounds at the scale of ||x||^2: about the units' mean it
        # rounds at the scale of their spread instead, and the distances' order is shift-free
        centre = pos[g.alive].mean(0)
        rel = pos - centre
        sq = (rel * rel).sum(1).masked_fill_(~g.alive, math.inf)
        dist2 = torch.addmm(sq, xb - centre, rel.t(), alpha=-2.0)     # ||w||^2 - 2 x.w: same order
        s1 = dist2.min(1).indices                                      # two passes of min: ~2x
        dist2.scatter_(1, s1.unsqueeze(1), math.inf)                   # faster than topk(2) or
        s2 = dist2.min(1).indices                                      # argmin on CPU
        d1 = ((xb - pos[s1]) ** 2).sum(1)                              # exact, not by the expansion
        g.error.mul_(p.d ** B).index_add_(0, s1, d1.double() * self._decay_weights(B))

        # the pull on every unit: from its own wins (eps_b) and its neighbours' wins (eps_n)
        wins = torch.zeros(cap, dtype=pos.dtype, device=pos.device).index_add_(0, s1, torch.ones_like(d1))
        win_sum = torch.zeros_like(pos).index_add_(0, s1, xb)
        ids, u, v = g.live_edges()
        near = torch.zeros_like(wins).index_add_(0, u, wins[v]).index_add_(0, v, wins[u])
        near_sum = torch.zeros_like(pos).index_add_(0, u, win_sum[v]).index_add_(0, v, win_sum[u])
        weight = p.eps_b * wins + p.eps_n * near
        keep = _remaining(p.eps_b, wins) * _remaining(p.eps_n, near)
        target = (p.eps_b * win_sum + p.eps_n * near_sum) / weight.clamp_min(1e-30).unsqueeze(1)
        pos.add_(((1 - keep) * (weight > 0)).unsqueeze(1) * (target - pos))

        # ages, competitive Hebbian edges, expiry and the units it leaves bare
        age = g.value
        age[ids] += (wins[u] + wins[v]).to(age.dtype)
        pair = torch.unique(torch.minimum(s1, s2) * cap + torch.maximum(s1, s2))
        a, b = pair // cap, pair % cap
        found = g.find_edges(a, b)
        age[found[found >= 0]] = 0
        new = found < 0
        g.add_edges(a[new], b[new], torch.zeros(int(new.sum()), dtype=age.dtype, device=age.device))
        expired = ids[age[ids] > p.a_max]
        if len(expired):
            g.remove_edges(expired)
            g.kill(torch.nonzero(g.alive & (g.degree == 0)).squeeze(1))

        due = (self.t + B) // p.lam - self.t // p.lam
        self.t += B
        for _ in range(due):
            if g.n_alive >= self.max_nodes:
                break
            self.insert_unit()

    def insert_unit(self) -> None:
        """Step 8: a unit r halfway between q (largest error) and its neighbour f of largest error."""
        g, p = self.graph, self.params
        q = int(g.error.masked_fill(~g.alive, -math.inf).argmax())
        ids, nb = g.neighbours(q)
        if not len(ids):  # cannot happen: a unit without edges is removed in step 7
            return
        k = int(g.error[nb].argmax())
        f, qf = int(nb[k]), int(ids[k])
        r = g.free_slot()              # may grow the store: read its tensors after this
        g.revive(r, (g.pos[q] + g.pos[f]) / 2)
        g.remove_edge(qf)
        g.add_edge(q, r, 0)
        g.add_edge(f, r, 0)
        g.error[q] *= p.alpha
        g.error[f] *= p.alpha
        g.error[r] = g.error[q]

    def _decay_weights(self, size: int) -> torch.Tensor:
        """d^(B-k+1) for the signal k = 1..B of a batch: the decays it sees from its own step to
        the batch's end (the sequential mode decays every error after every step, its own too)."""
        if size not in self._decay_cache:
            k = torch.arange(size, 0, -1, dtype=torch.float64, device=self.device)
            self._decay_cache[size] = self.params.d ** k
        return self._decay_cache[size]

    def to(self, device: str) -> GNG:
        super().to(device)
        self._decay_cache = {}
        return self

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", mode={self.params.mode!r})"
