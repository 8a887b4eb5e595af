"""The one protocol every plasticity rule follows, and the driver trainers use to run one.

A rule is a small object with a state dict (like a torch optimizer):

* `observe(net, trace)` after each optimizer step or environment step: read statistics.
  `trace` is the last forward pass's per-sample activity (`core.trace.Trace`) when the rule
  sets `wants_trace`, else None.
* `step(net, optimizer=None) -> Edits`: structural changes. A rule never mutates topology
  but through `net.apply_edits(edits, optimizer=optimizer)` (the single edit path); it may
  apply its Edits itself and return them, or return them unapplied, and the driver applies
  them with the trainer's optimizer. Empty when it did nothing.
* `update(net) -> None`: weight rules (Hebbian, learned) change weights here; trainers call
  it under `torch.no_grad()`, so no autograd graph is ever built for it.
* `state_dict()` / `load_state_dict(state)`: resumable runs.

Rules register by class name, so a checkpoint's rule state rebuilds the rule that wrote it
(`rule_from_state`).
"""
from __future__ import annotations

import torch

from ..core.edits import Edits
from ..errors import CheckpointError, ConfigError

RULES: dict[str, type] = {}


class Rule:
    """Base class with the protocol's do-nothing defaults; subclasses override what they use."""

    wants_trace: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        RULES[cls.__name__] = cls

    def observe(self, net, trace=None) -> None:
        """Read statistics after a step (default: nothing)."""

    def step(self, net, optimizer=None) -> Edits:
        """Structural changes, applied through net.apply_edits and returned (default: none)."""
        return Edits()

    def update(self, net) -> None:
        """Weight changes without gradients (default: none)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned (default: nothing to restore)."""


def rule_state(rule) -> dict | None:
    """`rule.state_dict()` tagged with the rule's class, as checkpoints store it."""
    if rule is None:
        return None
    return {"class": type(rule).__name__, "state": rule.state_dict()}


def rule_from_state(saved: dict | None):
    """The rule a checkpoint holds (see `rule_state`), or None."""
    if saved is None:
        return None
    if not isinstance(saved, dict) or "class" not in saved:
        raise CheckpointError("the checkpoint's rule state does not name its rule class")
    cls = RULES.get(saved["class"])
    if cls is None:
        raise CheckpointError(f"the checkpoint holds the state of rule {saved['class']!r}, which is not "
                              "registered (import the module that defines it first)")
    rule = cls()
    rule.load_state_dict(saved["state"])
    return rule


def check_rule(rule) -> None:
    """A ConfigError unless `rule` has the protocol's methods."""
    if not all(callable(getattr(rule, name, None)) for name in ("observe", "step", "state_dict")):
        raise ConfigError(f"rule={rule!r} does not follow the rule protocol "
                          "(observe, step, state_dict; see neuroplastic.rules.Rule)")


class RuleDriver:
    """Runs a rule beside a trainer's loop: keeps the last forward pass's trace when the rule
    wants one (a trace hook on the net), and after each optimizer step calls observe, step and,
    with no autograd graph, update. `net` is the GraphNet the rule acts on (a student's core)."""

    def __init__(self, rule, net):
        check_rule(rule)
        if getattr(rule, "needs_teacher", False):
            raise ConfigError(f"{type(rule).__name__} learns from a teacher's error, which this trainer does not "
                              f"give it; use npl.distill(..., learner='hebbian')")
        self.rule, self.net = rule, net
        self.trace = None
        self._handle = net.register_trace_hook(self._keep) if getattr(rule, "wants_trace", False) else None

    def _keep(self, net, trace) -> None:
        self.trace = trace

    def after_step(self, optimizer=None) -> Edits:
        self.rule.observe(self.net, self.trace)
        edits = self.rule.step(self.net, optimizer)
        if isinstance(edits, Edits) and edits and not edits.applied:  # returned, not applied by the rule
            self.net.apply_edits(edits, optimizer=optimizer)
        with torch.no_grad():
            self.rule.update(self.net)
        self.trace = None
        return edits

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
