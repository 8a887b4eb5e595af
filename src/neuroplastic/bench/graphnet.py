"""`bench graphnet`: GraphNet against torch.nn.Sequential (training step, memory) and the cost of
edits (single ops against reallocating parameters; array ops against a training step)."""
from __future__ import annotations

import statistics

import torch
from torch import nn

from ..core.edits import Edits
from ..core.graph import GraphNet
from ..train.distill import sequential_mlp
from .timing import median_time, train_step

# (label, n_in, hidden, n_out): about 1k, 100k and 1M parameters.
THROUGHPUT_SHAPES = [("1k", 32, [24], 8), ("100k", 128, [256, 256], 10), ("1M", 512, [1024, 512], 10)]


def throughput_rows(device: str, quick: bool) -> list[dict]:
    rows = []
    batch = 256
    for _label, n_in, hidden, n_out in THROUGHPUT_SHAPES[:2] if quick else THROUGHPUT_SHAPES:
        torch.manual_seed(0)
        x = torch.randn(batch, n_in, device=device)
        y = torch.randn(batch, n_out, device=device)
        ref = sequential_mlp(n_in, hidden, n_out).to(device)
        ours = GraphNet.mlp(n_in, hidden, n_out, seed=0).to(device)
        n_params = sum(p.numel() for p in ref.parameters())
        assert ours.n_params == n_params
        steps = {}
        for name, model in (("ref", ref), ("ours", ours)):
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            steps[name] = train_step(model, opt, x, y)
            for _ in range(3):
                steps[name]()
        inner = 5 if quick else 20
        t_ref, t_ours = [], []
        for _ in range(3 if quick else 7):  # interleave so both see the same machine state
            t_ref.append(median_time(steps["ref"], inner, device))
            t_ours.append(median_time(steps["ours"], inner, device))
        ref_rate, our_rate = 1 / statistics.median(t_ref), 1 / statistics.median(t_ours)
        rows.append({"case": f"train step, MLP {n_in}-{'-'.join(map(str, hidden))}-{n_out} "
                             f"({n_params:,} params, batch {batch}, {device}) vs torch.nn.Sequential",
                     "ours": round(our_rate, 2), "reference": round(ref_rate, 2), "unit": "steps/s",
                     "ratio": round(our_rate / ref_rate, 3)})
    return rows


# MLPs with about 1k, 10k and 100k edges for the edit-latency cases.
EDIT_SHAPES = [("1k", 16, [32], 16), ("10k", 64, [96], 40), ("100k", 256, [256, 128], 32),
               ("1M", 512, [1024, 512], 10)]


def _rebuild_reference(model: nn.Module):
    """Editing without capacity padding, keeping Adam's moments: reallocate every parameter
    one slot larger, build a new Adam and copy each moment tensor across."""
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()

    def rebuild():
        with torch.no_grad():
            grown = [nn.Parameter(torch.cat([p.detach().reshape(-1), p.new_zeros(1)])) for p in params]
            new_opt = torch.optim.Adam(grown, lr=1e-3)
            for old, new in zip(params, grown):
                state = opt.state[old]
                new_opt.state[new] = {"step": state["step"].clone(), **{
                    k: torch.cat([state[k].reshape(-1), state[k].new_zeros(1)]) for k in ("exp_avg", "exp_avg_sq")}}
    return rebuild


def edit_rows(device: str, quick: bool) -> list[dict]:
    rows = []
    for _label, n_in, hidden, n_out in EDIT_SHAPES[:3] if quick else EDIT_SHAPES:
        net = GraphNet.mlp(n_in, hidden, n_out, seed=0).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        x = torch.randn(8, n_in, device=device)
        train_step(net, opt, x, torch.zeros(8, n_out, device=device))()
        net.apply_edits(Edits())  # builds the topology index once, outside the timing
        n_edges = net.n_edges
        first_out = n_in  # an input -> output edge does not exist in an MLP with hidden layers

        def add_remove_edge():
            net.apply_edits(Edits().add_edge(0, first_out, weight=0.0), optimizer=opt)
            net.apply_edits(Edits().remove_edge(0, first_out), optimizer=opt)

        def add_remove_relay():
            e = Edits()
            h = e.add_neuron(between=(0, first_out))
            net.apply_edits(e, optimizer=opt)
            net.apply_edits(Edits().remove_neuron(int(h)), optimizer=opt)

        reference = _rebuild_reference(sequential_mlp(n_in, hidden, n_out).to(device))
        repeats = 20 if quick else 100
        for what, fn in (("one edge", add_remove_edge), ("one relay neuron", add_remove_relay)):
            fn()
            ours = median_time(fn, repeats, device) / 2 * 1e3  # each call is an add and a remove
            ref = median_time(reference, repeats, device) * 1e3
            rows.append({"case": f"apply_edits, {what}, {n_edges:,} edges ({device}) vs reallocating "
                                 "parameters and copying Adam state",
                         "ours": round(ours, 4), "reference": round(ref, 4), "unit": "ms",
                         "ratio": round(ref / ours, 2)})
    return rows


def bench_graphnet(quick: bool = False, device: str = "cpu") -> list[dict]:
    """GraphNet training throughput and memory vs torch.nn MLP, apply_edits latency, array edits."""
    from .scale import array_edit_rows, memory_rows
    return throughput_rows(device, quick) + edit_rows(device, quick) + array_edit_rows(device, quick) \
        + memory_rows(device, quick)
