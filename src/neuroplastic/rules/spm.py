"""The Structural Plasticity Module of SMGrNN (Jia & Zhou 2025, arXiv 2512.12713).

The SPM watches the realised weight change Δw of every edge after each optimizer step and
the activity of every neuron, in ring buffers of the last `window` steps (one tensor each,
indexed by slot: no per-edge Python). Every `interval` steps it proposes one batch of edits:

1. edge-driven growth: an edge whose updates keep changing sign without settling,
   |mean Δw| < 0.5·std Δw and var Δw > lambda_edge·|mean Δw|, gets a relay neuron
   i -> r -> j (the original edge is kept); the most undecided edges first.
2. random exploratory growth: with probability p_rand, ceil(rho_rand·N) new zero-weight
   edges between random neurons (N = live neurons), kept acyclic.
3. pruning: a live edge that is small and has stopped moving, |w| <= tau_w and
   |mean Δw| <= tau_delta, is removed with probability eta_prune.
4. orphan removal: hidden neurons left without inputs or outputs are removed
   (`Edits.remove_dead`, which folds a source-less neuron's constant into its targets).

Defaults follow docs/smgrnn.md: values the paper gives where known, otherwise the
documented proposals there. The rule never mutates the network: `propose` returns Edits
and `step` hands them to `GraphNet.apply_edits`, the single edit path.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from ..core.edits import Edits, edit_index
from ..core.validate import check_bool, check_int, check_number
from ..errors import ConfigError
from .base import Rule


@dataclass
class SPMConfig:
    window: int = 100          # T: steps of Δw history behind every statistic
    interval: int = 100        # s: steps between structural events
    warmup: int = 100          # no edits before this many observed steps
    edge_growth: bool = True
    lambda_edge: float = 1e-3  # ~ lr: Δw under Adam is of the order of the learning rate
    # Relays per event, most undecided edges first. The notes propose 2; with 2, SMGrNN churned
    # (600 relays in, ~550 neurons pruned out per 30k steps) and reached 227 on LunarLander
    # (seeds 0-2); with 1 it reached 256, the large MLP's return, with fewer parameters.
    max_relays: int = 1
    relay_init: float = 0.05   # relay edge weights ~ U(-relay_init, relay_init), bias 0
    max_hidden: int = 256      # growth stops at this many hidden neurons
    random_growth: bool = True
    p_rand: float = 0.05
    rho_rand: float = 0.05
    prune: bool = True
    tau_w: float = 1e-2
    tau_delta: float = 1e-4    # ~ 0.1·lr
    eta_prune: float = 0.3
    min_age: int = 100         # edges younger than this (in steps) are neither grown on nor pruned
    remove_orphans: bool = True
    prune_inactive: bool = False    # optional, off in the paper's method
    activity_threshold: float = 1e-3
    seed: int = 0

    _POSITIVE_INT = ("window", "interval")
    _NON_NEGATIVE = ("warmup", "lambda_edge", "max_relays", "relay_init", "max_hidden", "tau_w",
                     "tau_delta", "min_age", "activity_threshold", "rho_rand")
    _PROBABILITY = ("p_rand", "eta_prune")
    MAX_WINDOW = 100_000

    def __post_init__(self):
        # numpy scalars become plain numbers here (configs, checkpoints and results hold them)
        for f in dataclasses.fields(self):
            value, what = getattr(self, f.name), f"SPM {f.name}"
            if f.type == "bool":
                value = check_bool(value, what)
            elif f.type == "int":
                if isinstance(value, float) and value.is_integer():  # 100.0 from a TOML file
                    value = int(value)
                minimum = 1 if f.name in self._POSITIVE_INT else 0 if f.name in self._NON_NEGATIVE else None
                # the ring holds `window` values per edge slot
                value = check_int(value, what, minimum, self.MAX_WINDOW if f.name == "window" else None)
            elif f.type == "float":
                bounds = (0, 1) if f.name in self._PROBABILITY else (0, None) if f.name in self._NON_NEGATIVE \
                    else (None, None)
                value = check_number(value, what, *bounds)
            setattr(self, f.name, value)

    @classmethod
    def from_dict(cls, values: dict) -> SPMConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown SPM option {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**values)


def _fit(t: torch.Tensor, n: int, fill) -> torch.Tensor:
    """`t` cut or padded with `fill` to length n."""
    if len(t) >= n:
        return t[:n]
    return torch.cat([t, torch.full((n - len(t),), fill, dtype=t.dtype)])


@dataclass
class _Ring:
    """Per-slot ring buffer of the last `window` values, reset when a slot changes owner."""

    window: int
    size: int
    values: torch.Tensor = field(init=False)
    count: torch.Tensor = field(init=False)
    owner: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.values = torch.zeros(self.window, self.size)
        self.count = torch.zeros(self.size, dtype=torch.long)
        self.owner = torch.full((self.size,), -1, dtype=torch.long)

    def resize(self, size: int) -> None:
        if size <= self.size:
            return
        grow = size - self.size
        self.values = torch.cat([self.values, torch.zeros(self.window, grow)], 1)
        self.count = torch.cat([self.count, torch.zeros(grow, dtype=torch.long)])
        self.owner = torch.cat([self.owner, torch.full((grow,), -1, dtype=torch.long)])
        self.size = size

    def push(self, t: int, value: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        """Record `value` at step t; returns the mask of slots whose owner changed."""
        self.resize(len(owner))
        changed = owner != self.owner
        self.count[changed] = 0
        self.owner = owner.clone()
        self.values[t % self.window] = value
        self.count = torch.where(owner >= 0, (self.count + 1).clamp(max=self.window), 0)
        return changed

    def stats(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, sample variance over the window, and the mask of full windows."""
        full = self.count >= self.window
        mean = self.values.mean(0)
        # (an empty ring has nothing to reduce: torch would warn about zero degrees of freedom)
        var = self.values.var(0, correction=1) if self.window > 1 and self.size else torch.zeros_like(mean)
        return mean, var, full

    def state_dict(self) -> dict:
        return {"values": self.values, "count": self.count, "owner": self.owner}

    def load_state_dict(self, state: dict) -> None:
        self.values, self.count, self.owner = state["values"], state["count"], state["owner"]
        self.size = self.count.numel()


class SPM(Rule):
    """Structural Plasticity Module: call `observe(net, trace)` after every `optimizer.step()`
    and `step(net, optimizer)` after that; `step` returns the Edits it applied (often empty).
    It reads per-sample activity (a trace) only with `prune_inactive`.

    Growth-only is `SPM(prune=False)`, growth-disabled `SPM(edge_growth=False,
    random_growth=False)`: configurations of one rule, not copies of it.
    """

    def __init__(self, config: SPMConfig | None = None, **options):
        self.config = config if config is not None else SPMConfig.from_dict(options)
        if config is not None and options:
            self.config = SPMConfig.from_dict({**dataclasses.asdict(config), **options})
        c = self.config
        self.t = 0
        self.gen = torch.Generator().manual_seed(int(c.seed))
        self.delta = _Ring(c.window, 0)
        self.activity = _Ring(c.window, 0)
        self.age = torch.zeros(0, dtype=torch.long)
        self._prev: torch.Tensor | None = None
        self.events: list[dict] = []

    @property
    def wants_trace(self) -> bool:
        return self.config.prune_inactive

    # ------------------------------------------------------------------ statistics
    def observe(self, net, trace=None) -> None:
        """Record this step's Δw per edge slot and, from `trace`, activity per neuron."""
        w = net.weight.detach().to("cpu", torch.float32)
        uid = torch.where(net.edge_alive, net.track_edge_owners().edge_uid, -1).cpu()
        if w.numel() < self.delta.size:  # the storage was packed (slots renumbered): restart
            self.delta, self._prev = _Ring(self.config.window, 0), None
            self.age = torch.zeros(0, dtype=torch.long)
        if self._prev is None or self._prev.numel() != w.numel():
            prev = torch.zeros_like(w)
            if self._prev is not None:
                prev[: self._prev.numel()] = self._prev
            self._prev = prev
        self.delta.resize(w.numel())
        newborn = uid != self.delta.owner
        step_delta = torch.where(newborn, 0.0, w - self._prev)
        self.delta.push(self.t, step_delta, uid)
        if self.age.numel() != w.numel():
            self.age = torch.cat([self.age, torch.zeros(w.numel() - self.age.numel(), dtype=torch.long)])
        self.age = torch.where(uid < 0, 0, torch.where(newborn, 1, self.age + 1))
        self._prev = w.clone()
        if trace is not None:
            nid = torch.where(net.neuron_alive, net.neuron_uid, -1).cpu()
            self.activity.push(self.t, trace.mean_abs().float().cpu(), nid)
        self.t += 1

    def edge_statistics(self):
        """(mean Δw, std Δw, mature mask) per edge slot over the window."""
        mean, var, full = self.delta.stats()
        return mean, var.clamp(min=0).sqrt(), full & (self.age >= self.config.min_age)

    # ------------------------------------------------------------------ decisions
    def due(self) -> bool:
        c = self.config
        return self.t >= max(c.warmup, 1) and self.t % c.interval == 0

    def propose(self, net) -> Edits:
        """The edits the rule wants now (ignores the schedule; `step` applies it)."""
        c = self.config
        edits = Edits()
        mean, std, mature = self.edge_statistics()
        n = net.edge_capacity
        # slots the statistics have not seen yet (storage grown since the last observe) are
        # unobserved: zero statistics, not mature, so no rule acts on them
        mean, std, mature = _fit(mean, n, 0.0), _fit(std, n, 0.0), _fit(mature, n, False)
        live = net.edge_alive.cpu() & mature
        src, dst = net.edge_src.cpu(), net.edge_dst.cpu()
        n_hidden = net.n_hidden
        event = {"step": self.t, "relays": 0, "random_edges": 0, "pruned_edges": 0,
                 "removed_neurons": 0}

        if c.edge_growth and c.max_relays > 0 and n_hidden < c.max_hidden:
            var = std**2
            flagged = live & (mean.abs() < 0.5 * std) & (var > c.lambda_edge * mean.abs())
            score = torch.where(flagged, var / (mean.abs() + 1e-12), -1.0)
            k = min(c.max_relays, int(flagged.sum()), c.max_hidden - n_hidden)
            for slot in torch.topk(score, k).indices.tolist() if k > 0 else []:
                w_in, w_out = ((torch.rand(2, generator=self.gen) * 2 - 1) * c.relay_init).tolist()
                edits.add_neuron(between=(int(src[slot]), int(dst[slot])),
                                 weight_in=w_in, weight_out=w_out, bias=0.0)
                event["relays"] += 1

        if c.random_growth and float(torch.rand(1, generator=self.gen)) < c.p_rand:
            pairs = self._random_pairs(net, math.ceil(c.rho_rand * net.n_neurons))
            for s, d in pairs:
                edits.add_edge(s, d, weight=0.0)
            event["random_edges"] = len(pairs)

        if c.prune:
            weight = net.weight.detach().cpu()[:n]
            candidate = live & (weight.abs() <= c.tau_w) & (mean.abs() <= c.tau_delta)
            chosen = candidate & (torch.rand(n, generator=self.gen) < c.eta_prune)
            edits.remove_edges(src[chosen], dst[chosen])
            event["pruned_edges"] = int(chosen.sum())

        if c.prune_inactive:
            mean_act, _, full = self.activity.stats()
            mean_act, full = _fit(mean_act, net.capacity, 0.0), _fit(full, net.capacity, False)
            hidden = net.hidden_ids().cpu()
            quiet = hidden[(mean_act[hidden] < c.activity_threshold) & full[hidden]]
            edits.remove_neurons(quiet)
        if c.remove_orphans and (event["pruned_edges"] or c.prune_inactive):
            edits.remove_dead()
        self._event = event
        return edits

    def _random_pairs(self, net, k: int) -> list[tuple[int, int]]:
        """Up to k new (src, dst) pairs, src before dst in level order (so no cycle)."""
        if k <= 0:
            return []
        alive = net.neuron_alive.nonzero().squeeze(1).cpu()
        n_in, n_fixed = net.n_in, net.n_in + net.n_out
        sources = alive[(alive < n_in) | (alive >= n_fixed)]
        targets = alive[alive >= n_in]
        if net.mode == "dag":
            level = net.levels().cpu()
        draws = 8 * k
        s = sources[torch.randint(len(sources), (draws,), generator=self.gen)]
        d = targets[torch.randint(len(targets), (draws,), generator=self.gen)]
        ok = s != d
        if net.mode == "dag":
            ok &= level[s] < level[d]
        s, d = s[ok], d[ok]
        new = edit_index(net).slots_of(s, d) < 0
        s, d = s[new], d[new]
        # the first draw of every pair, in draw order, up to k of them
        keys = s * net.capacity + d
        order = torch.argsort(keys, stable=True)
        first = torch.ones(len(keys), dtype=torch.bool)
        first[order[1:]] = keys[order[1:]] != keys[order[:-1]]
        keep = first.nonzero().squeeze(1)[:k]
        return list(zip(s[keep].tolist(), d[keep].tolist()))

    def step(self, net, optimizer=None) -> Edits:
        """Apply the scheduled structural event, if one is due; returns the applied Edits."""
        if not self.due():
            return Edits()
        hidden_before = net.n_hidden
        edits = self.propose(net)
        if edits:
            net.apply_edits(edits, optimizer=optimizer)
        event = self._event
        event["removed_neurons"] = max(0, hidden_before + event["relays"] - net.n_hidden)
        event.update(n_hidden=net.n_hidden, n_edges=net.n_edges, n_params=net.n_params)
        self.events.append(event)
        return edits

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {"config": dataclasses.asdict(self.config), "t": self.t,
                "gen": self.gen.get_state(), "delta": self.delta.state_dict(),
                "activity": self.activity.state_dict(), "age": self.age,
                "prev": self._prev if self._prev is not None else torch.zeros(0),
                "events": [dict(e) for e in self.events]}

    def load_state_dict(self, state: dict) -> None:
        self.config = SPMConfig.from_dict(state["config"])
        self.t = int(state["t"])
        self.gen.set_state(state["gen"])
        self.delta = _Ring(self.config.window, 0)
        self.delta.load_state_dict(state["delta"])
        self.activity = _Ring(self.config.window, 0)
        self.activity.load_state_dict(state["activity"])
        self.age = state["age"]
        self._prev = state["prev"] if state["prev"].numel() else None
        self.events = [dict(e) for e in state["events"]]
