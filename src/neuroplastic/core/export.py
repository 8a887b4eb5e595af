"""Export a GraphNet as a plain torch module (torch.fx) or ONNX file.

The exported module unrolls the level plan (DAG) or the sweeps (recurrent) into straight
torch code with dense weight blocks as ordinary Parameters. Tracing it with torch.fx yields a
`GraphModule` whose code and attributes are pure torch, so a saved copy loads without this
library.
"""
from __future__ import annotations

import torch
from torch import fx, nn

from ..errors import ConfigError
from .graph import ACTIVATIONS


class _UnrolledDag(nn.Module):
    def __init__(self, net):
        super().__init__()
        plan = net._get_plan()
        self.blocks = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.layout = []
        with torch.no_grad():
            for lv in plan.levels:
                w, b = net._level_block(lv)
                if lv.sparse:  # materialise the sparse level's block densely
                    rows = len(lv.row_ids)
                    w = w.new_zeros(rows, lv.width).index_put((lv.dst_local, lv.src_local), w)
                self.blocks.append(nn.Parameter(w.detach().clone()))
                self.biases.append(nn.Parameter(b.detach().clone()))
                self.layout.append((lv.src_part, lv.src_offset, lv.width, lv.is_output))
        self.act = ACTIVATIONS[net.activation]
        self.out_act = ACTIVATIONS[net.output_activation]

    def forward(self, x):
        outs = [x]
        for i, (part, offset, width, is_output) in enumerate(self.layout):
            b = self.biases[i]
            if width == 0:
                z = b.expand(x.shape[0], b.shape[0])
            else:
                src = outs[part] if part == len(outs) - 1 else torch.cat(outs[part:], 1)
                z = torch.addmm(b, src[:, offset:offset + width], self.blocks[i].t())
            outs.append(self.out_act(z) if is_output else self.act(z))
        return outs[-1]


class _UnrolledRecurrent(nn.Module):
    def __init__(self, net):
        super().__init__()
        plan = net._get_plan()
        m = len(plan.ids)
        with torch.no_grad():
            w = torch.zeros(m, m, dtype=net.weight.dtype, device=net.weight.device)
            w[plan.r_dst, plan.r_src] = net.weight[plan.r_eids]
        self.w = nn.Parameter(w)
        self.b = nn.Parameter(net.bias.detach()[plan.ids].clone())
        self.n_in, self.n_fixed, self.m = net.n_in, net.n_in + net.n_out, m
        self.steps, self.clamp = net.steps, net.clamp_inputs
        self.act = ACTIVATIONS[net.activation]
        self.out_act = ACTIVATIONS[net.output_activation]

    def forward(self, x):
        h = torch.cat([x, x.new_zeros(x.shape[0], self.m - self.n_in)], 1)
        for _ in range(self.steps):
            z = torch.addmm(self.b, h, self.w.t())
            first = x if self.clamp else self.act(z[:, : self.n_in])
            h = torch.cat([first, self.out_act(z[:, self.n_in:self.n_fixed]),
                           self.act(z[:, self.n_fixed:])], 1)
        return h[:, self.n_in:self.n_fixed]


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
