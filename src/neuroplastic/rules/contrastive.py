"""Learning from a teacher with local rules only: contrastive Hebbian learning at the outputs,
Oja's rule (or nothing) in the hidden neurons. No gradient, no backpropagation, no optimizer.

For an edge i -> j into an output neuron j the rule is Hebbian with the output clamped to the
teacher's value t_j, minus Hebbian with the output free (its own value y_j), as in contrastive
Hebbian learning (Movellan 1991):

    Δw_ij = η ⟨o_i t_j⟩ - η ⟨o_i y_j⟩ = η ⟨o_i (t_j - y_j)⟩,    Δb_j = η ⟨t_j - y_j⟩

averaged over the batch. In a feed-forward net clamping an output changes nothing upstream,
so the two phases differ at the outputs only: this is the delta rule (Widrow & Hoff 1960).
With softmax outputs and a one-hot target it equals an output edge's own gradient of the
cross-entropy; for squashed continuous outputs it leaves out the squashing's derivative. What
the rule lacks is backpropagation: no error ever reaches a hidden neuron. A hidden edge learns, with
`hidden="oja"`, from its own pre- and post-synaptic activity by Oja's rule (1982),

    Δw_ij = η_hidden ⟨o_j (o_i - o_j w_ij)⟩,

a Hebbian term with the decay that keeps |w| bounded, or with `hidden="fixed"` not at all.

The trainer computes the output error t - y (y = softmax(logits) for discrete actions, the
squashed action for continuous ones) and hands it over with `teach(error)` before `update`.
"""
from __future__ import annotations

import torch

from ..core.validate import check_choice, check_number
from ..errors import ConfigError
from .base import Rule

HIDDEN_RULES = ("oja", "fixed")


class ContrastiveHebbian(Rule):
    """`ContrastiveHebbian(eta=0.1, hidden="oja", eta_hidden=0.01)` on a DAG GraphNet: call
    `observe(net, trace)` with a forward pass's trace (or register it as a trace hook), then
    `teach(error)` with that pass's (batch, n_out) output error t - y, then `update(net)`.
    `npl.distill(..., learner="hebbian")` does all three; a trainer that gives no error cannot
    drive it (`RuleDriver` refuses it)."""

    wants_trace = True
    needs_teacher = True   # it learns from teach(error), which only its own learner calls

    def __init__(self, eta: float = 0.1, hidden: str = "oja", eta_hidden: float = 0.01):
        self.eta = check_number(eta, "ContrastiveHebbian eta", above=0)
        self.hidden = check_choice(hidden, "ContrastiveHebbian hidden", HIDDEN_RULES)
        self.eta_hidden = check_number(eta_hidden, "ContrastiveHebbian eta_hidden", 0)
        self._trace = self._error = None

    def observe(self, net, trace=None) -> None:
        self._trace = trace

    def teach(self, error: torch.Tensor) -> None:
        """The teacher's signal for the last forward pass: (batch, n_out) target minus output."""
        self._error = torch.as_tensor(error).detach()

    def delta(self, net, trace, error: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Δw per live edge slot in slot order, Δb of the outputs)."""
        if net.mode != "dag" or trace.recurrent:
            raise ConfigError("ContrastiveHebbian runs on a feed-forward (mode='dag') GraphNet")
        if trace.capacity != net.capacity or trace.x.shape[1] != net.n_in:
            raise ConfigError("ContrastiveHebbian: the trace is of another network's forward pass")
        if error.shape != (trace.x.shape[0], net.n_out):
            raise ConfigError(f"ContrastiveHebbian: the error has shape {tuple(error.shape)}; the last pass "
                              f"needs ({trace.x.shape[0]}, {net.n_out})")
        slots = net.edge_alive.nonzero().squeeze(1)
        src, dst = net.edge_src[slots].long(), net.edge_dst[slots].long()
        activity = trace.activity(-1)                       # (batch, capacity)
        pre = activity[:, src]
        # the error of every neuron slot: zero except at the outputs, so one product serves all
        error_at = activity.new_zeros(activity.shape)
        error_at[:, net.n_in:net.n_in + net.n_out] = error.to(activity)
        dw = self.eta * (pre * error_at[:, dst]).mean(0)
        if self.hidden == "oja":
            post, w = activity[:, dst], net.weight.detach()[slots].to(activity)
            into_output = dst < net.n_in + net.n_out            # targets are never inputs
            oja = self.eta_hidden * (post * (pre - post * w)).mean(0)
            dw = torch.where(into_output, dw, oja)
        return dw, self.eta * error.to(activity).mean(0)

    def update(self, net) -> None:
        if self._trace is None or self._error is None:
            return
        with torch.no_grad():
            dw, db = self.delta(net, self._trace, self._error)
            slots = net.edge_alive.nonzero().squeeze(1)
            net.weight[slots] += dw.to(net.weight)
            net.bias[net.n_in:net.n_in + net.n_out] += db.to(net.bias)
        self._trace = self._error = None

    def state_dict(self) -> dict:
        return {"eta": self.eta, "hidden": self.hidden, "eta_hidden": self.eta_hidden}

    def load_state_dict(self, state: dict) -> None:
        self.__init__(state["eta"], state["hidden"], state["eta_hidden"])
