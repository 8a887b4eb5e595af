"""Optimizer-state surgery for structural edits.

`GraphNet` stores all edge weights in one flat Parameter and all biases in another, both
padded with spare capacity. So an edit never changes which Parameters exist; it only
changes which *slots* of them are live. Two operations keep an optimizer exact across edits:

* `zero_slots`: a slot that is born (new edge / neuron) or dies gets fresh, zero state, so a
  reused slot never inherits the moments of the weight that lived there before.
* `replace_parameter`: when capacity overflows, the Parameter is reallocated larger; its state
  is copied slot for slot into zero-padded tensors of the new size and the optimizer is
  pointed at the new Parameter. Packing (`GraphNet.pack_edges`) uses the same path with a
  map from new slots to old ones.

Every per-element state tensor (Adam/AdamW `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`, SGD
`momentum_buffer`, RMSprop `square_avg`, ...) is recognised by having the parameter's shape;
scalar state such as Adam's `step` is shared by all slots and left alone.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch


def _optimizers(optimizer) -> list[torch.optim.Optimizer]:
    if optimizer is None:
        return []
    if isinstance(optimizer, torch.optim.Optimizer):
        return [optimizer]
    return list(optimizer)


def _elementwise_state(opt: torch.optim.Optimizer, param: torch.Tensor) -> Iterable[torch.Tensor]:
    state = opt.state.get(param)
    if not state:
        return []
    return [v for v in state.values() if torch.is_tensor(v) and v.shape == param.shape]


def zero_slots(optimizer, param: torch.Tensor, slots: torch.Tensor) -> None:
    """Reset every per-element optimizer state of `param` at `slots` (and its grad) to zero."""
    if slots.numel() == 0:
        return
    with torch.no_grad():
        if param.grad is not None:
            param.grad[slots] = 0
        for opt in _optimizers(optimizer):
            for t in _elementwise_state(opt, param):
                t[slots] = 0


def replace_parameter(optimizer, old: torch.nn.Parameter, new: torch.nn.Parameter,
                      old_slots: torch.Tensor | None = None) -> None:
    """Point each optimizer at `new`, carrying per-element state slot for slot: new slot i
    takes old slot `old_slots[i]` (default: old slot i, `new` being a larger copy); any
    further slots of `new` start at zero."""
    if old_slots is None:
        old_slots = torch.arange(old.numel(), device=old.device)
    n = len(old_slots)
    for opt in _optimizers(optimizer):
        for group in opt.param_groups:
            group["params"] = [new if p is old else p for p in group["params"]]
        state = opt.state.pop(old, None)
        if state is None:
            continue
        moved = {}
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == old.shape:
                grown = torch.zeros_like(new, memory_format=torch.contiguous_format)
                grown[:n] = value[old_slots]
                moved[key] = grown
            else:
                moved[key] = value
        opt.state[new] = moved
