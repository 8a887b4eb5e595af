"""Export a GraphNet as a plain torch module (torch.fx) or ONNX file.

The exported module holds the plan's dense weight blocks as ordinary Parameters and runs them
with the same executor functions as GraphNet (`execute.run_levels` / `execute.run_sweeps`).
Tracing it with torch.fx inlines those functions, so the resulting `GraphModule`'s code and
attributes are pure torch, and a saved copy loads without this library.
"""
from __future__ import annotations

import copy

import torch
from torch import fx, nn

from ..errors import ConfigError
from . import execute


class _UnrolledDag(nn.Module):
    def __init__(self, net):
        super().__init__()
        plan = net.plan()
        self.blocks = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.layouts = [lv.layout for lv in plan.levels]
        self.n_in = net.n_in
        with torch.no_grad():
            for lv in plan.levels:
                w, b = execute.level_block(net, lv)
                if lv.sparse:  # materialise the sparse level's block densely
                    w = w.new_zeros(len(lv.row_ids), lv.width).index_put((lv.dst_local, lv.src_local), w)
                elif lv.csr is not None:
                    w = lv.csr.to_dense(w)
                self.blocks.append(nn.Parameter(w.detach().clone()))
                self.biases.append(nn.Parameter(b.detach().clone()))
        self.act = execute.ACTIVATIONS[net.activation]
        self.out_act = execute.ACTIVATIONS[net.output_activation]
        self.acts = None if plan.acts is None else [_own_masks(self, f"level{i}", a) for i, a in enumerate(plan.acts)]

    def forward(self, x):
        return execute.run_levels(x, self.n_in, self.layouts, list(self.blocks), list(self.biases), self.act,
                                  self.out_act, acts=self.acts)


class _UnrolledRecurrent(nn.Module):
    def __init__(self, net):
        super().__init__()
        plan = net.plan()
        with torch.no_grad():
            w_t, b = execute.recurrent_weights(net, plan)
            if plan.sparse and not plan.view:  # materialise the edge list densely
                m = len(plan.ids)
                w_t = w_t.new_zeros(m, m).index_put((plan.src_pos, plan.dst_pos), w_t)
        self.w_t = nn.Parameter(w_t.detach().clone().contiguous())
        self.b = nn.Parameter(b.detach().clone())
        self.register_buffer("is_output", plan.is_output.clone())
        self.n_in, self.n_out = net.n_in, net.n_out
        self.steps, self.clamp = net.steps, net.clamp_inputs
        self.act = execute.ACTIVATIONS[net.activation]
        self.out_act = execute.ACTIVATIONS[net.output_activation]
        self.act_all = None if plan.acts is None else _own_masks(self, "sweep", plan.acts[0])

    def forward(self, x):
        states = execute.run_sweeps(x, self.w_t, self.b, self.steps, self.is_output, self.act, self.out_act,
                                    self.clamp, act_all=self.act_all)
        return states[-1][:, self.n_in:self.n_in + self.n_out]


def _own_masks(module: nn.Module, name: str, act):
    """A copy of a plan's activation whose per-kind masks are buffers of `module`: torch.fx
    then reads them as the module's attributes, and they move with it between devices."""
    if not isinstance(act, execute.MixedActivation):
        return act
    mixed = copy.copy(act)
    mixed.others = []
    for k, (fn, mask) in enumerate(act.others):
        module.register_buffer(f"{name}_mask{k}", mask.clone())
        mixed.others.append((fn, getattr(module, f"{name}_mask{k}")))
    return mixed


def export_module(net) -> nn.Module:
    """The unrolled net as a torch.fx GraphModule; it takes (batch, n_in) inputs, like the
    exported ONNX graph (a single sample is x[None])."""
    unrolled = _UnrolledDag(net) if net.mode == "dag" else _UnrolledRecurrent(net)
    module = fx.symbolic_trace(unrolled)
    module.train(net.training)
    return module


def export_onnx(net, path, batch_size: int = 1) -> None:
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise ConfigError("ONNX export needs the 'onnx' package: pip install 'neuroplastic[onnx]'") from exc
    module = export_module(net).eval()
    example = torch.zeros(batch_size, net.n_in, dtype=net.weight.dtype, device=net.weight.device)
    torch.onnx.export(module, (example,), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
