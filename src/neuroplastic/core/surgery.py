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
scalar state such as Adam's `step` is shared by all slots and left alone. A fresh slot gets
the value the optimizer itself starts from: zero, except Rprop's `step_size` (the group's
lr; at zero the weight could never move) and Adagrad's `sum` (`initial_accumulator_value`).
"""
from __future__ import annotations

from collections.abc import Iterable

import torch

from ..errors import EditError


def as_optimizer_list(optimizer) -> list[torch.optim.Optimizer]:
    """`optimizer` as a list: None, one optimizer, or a list or tuple of them; anything else is
    an EditError (raised by apply_edits before any tensor is written)."""
    if optimizer is None:
        return []
    if isinstance(optimizer, torch.optim.Optimizer):
        return [optimizer]
    items = list(optimizer) if isinstance(optimizer, list | tuple) else [optimizer]
    for item in items:
        if not isinstance(item, torch.optim.Optimizer):
            raise EditError(f"optimizer={type(item).__name__} is not a torch.optim.Optimizer "
                            "(pass one optimizer, a list of them, or None)")
    return items


def _elementwise_state(opt: torch.optim.Optimizer, param: torch.Tensor) -> Iterable[tuple[str, torch.Tensor]]:
    state = opt.state.get(param)
    if not state:
        return []
    return [(k, v) for k, v in state.items() if torch.is_tensor(v) and v.shape == param.shape]


def _initial_value(opt: torch.optim.Optimizer, param: torch.Tensor, key: str) -> float:
    """What `opt` fills state `key` of a new parameter with."""
    group = next((g for g in opt.param_groups if any(p is param for p in g["params"])), opt.defaults)
    if isinstance(opt, torch.optim.Rprop) and key == "step_size":
        return float(group["lr"])
    if isinstance(opt, torch.optim.Adagrad) and key == "sum":
        return float(group["initial_accumulator_value"])
    return 0.0


def zero_slots(optimizer, param: torch.Tensor, slots: torch.Tensor) -> None:
    """Give every per-element optimizer state of `param` at `slots` its initial value (and
    zero the grad there), as for a parameter the optimizer has never seen."""
    if slots.numel() == 0:
        return
    with torch.no_grad():
        if param.grad is not None:
            param.grad[slots] = 0
        for opt in as_optimizer_list(optimizer):
            for key, t in _elementwise_state(opt, param):
                t[slots] = _initial_value(opt, param, key)


def replace_parameter(optimizer, old: torch.nn.Parameter, new: torch.nn.Parameter,
                      old_slots: torch.Tensor | None = None) -> None:
    """Point each optimizer at `new`, carrying per-element state slot for slot: new slot i
    takes old slot `old_slots[i]` (default: old slot i, `new` being a larger copy); any
    further slots of `new` start at zero."""
    if old_slots is None:
        old_slots = torch.arange(old.numel(), device=old.device)
    n = len(old_slots)
    for opt in as_optimizer_list(optimizer):
        for group in opt.param_groups:
            group["params"] = [new if p is old else p for p in group["params"]]
        state = opt.state.pop(old, None)
        if state is None:
            continue
        moved = {}
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == old.shape:
                grown = torch.full_like(new, _initial_value(opt, new, key), memory_format=torch.contiguous_format)
                grown[:n] = value[old_slots]
                moved[key] = grown
            else:
                moved[key] = value
        opt.state[new] = moved
