"""Benchmarks: ours against a reference measured side by side in the same run.

Each benchmark returns rows {case, ours, reference, unit, ratio}; ratio > 1 means ours is
better (higher throughput or lower latency). `run_benchmark` prints them as a table and
writes DIR/NAME.json in the format of DESIGN.md.
"""
from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from ..core.checkpoint import atomic_write_bytes, make_output_dir
from ..train.distill import sequential_mlp
from ..core.edits import Edits
from ..errors import ConfigError, UnknownNameError
from ..core.graph import GraphNet, _check_device
from ..report import markdown_table


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _median_time(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _train_step(model: nn.Module, opt, x, y, loss_fn=nn.functional.mse_loss):
    def step():
        opt.zero_grad(set_to_none=False)
        loss_fn(model(x), y).backward()
        opt.step()
    return step


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
            steps[name] = _train_step(model, opt, x, y)
            for _ in range(3):
                steps[name]()
        inner = 5 if quick else 20
        t_ref, t_ours = [], []
        for _ in range(3 if quick else 7):  # interleave so both see the same machine state
            t_ref.append(_median_time(steps["ref"], inner, device))
            t_ours.append(_median_time(steps["ours"], inner, device))
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
        _train_step(net, opt, x, torch.zeros(8, n_out, device=device))()
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
            ours = _median_time(fn, repeats, device) / 2 * 1e3  # each call is an add and a remove
            ref = _median_time(reference, repeats, device) * 1e3
            rows.append({"case": f"apply_edits, {what}, {n_edges:,} edges ({device}) vs reallocating "
                                 "parameters and copying Adam state", "ours": round(ours, 4), "reference": round(ref, 4),
                         "unit": "ms", "ratio": round(ref / ours, 2)})
    return rows


def bench_graphnet(quick: bool = False, device: str = "cpu") -> list[dict]:
    """GraphNet training throughput vs torch.nn MLP, and apply_edits latency vs network size."""
    return throughput_rows(device, quick) + edit_rows(device, quick)


class _DenseRecurrentReference(nn.Module):
    """The same product written directly in torch: one S x S matrix applied I times."""

    def __init__(self, n_in: int, n_out: int, size: int, steps: int):
        super().__init__()
        self.w = nn.Parameter(torch.randn(size, size) * (2 / size) ** 0.5)
        self.b = nn.Parameter(torch.zeros(size))
        self.n_in, self.n_out, self.steps = n_in, n_out, steps

    def forward(self, x):
        h = torch.cat([x, x.new_zeros(x.shape[0], self.w.shape[0] - self.n_in)], 1)
        for _ in range(self.steps):
            h = torch.relu(torch.addmm(self.b, h, self.w.t()))
        return h[:, self.n_in:self.n_in + self.n_out]


def bench_urn(quick: bool = False, device: str = "cpu") -> list[dict]:
    """URN train step vs a dense torch reference, and the per-epoch speed-up of compaction."""
    from ..tasks.datasets import shells
    from ..train.urn import URN, train_urn, training_epoch
    rows = []
    batch, steps = 256, 4
    for size in ((300, 1000) if quick else (1000, 5000)):
        torch.manual_seed(0)
        x = torch.randn(batch, 10, device=device)
        y = torch.randint(0, 3, (batch,), device=device)
        ours = URN(10, 3, size=size, steps=steps, c_weight=1e-3, c_activity=1e-4).to(device)
        ref = _DenseRecurrentReference(10, 3, size, steps).to(device)
        opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-3)
        opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-3)

        step_ours_executor = _train_step(ours, opt_ours, x, y, nn.functional.cross_entropy)
        step_ref = _train_step(ref, opt_ref, x, y, nn.functional.cross_entropy)

        def step_ours_full():
            loss, _ = ours.loss(x, y)
            opt_ours.zero_grad(set_to_none=False)
            loss.backward()
            opt_ours.step()
            ours.proximal_step(opt_ours)

        for fn in (step_ours_executor, step_ours_full, step_ref):
            fn()
        repeats = 3 if size >= 5000 or quick else 10
        t_ref = _median_time(step_ref, repeats, device)
        for label, fn in (("cross-entropy only", step_ours_executor),
                          ("full URN loss: + activity L1 + proximal L1 on W", step_ours_full)):
            t_ours = _median_time(fn, repeats, device)
            rows.append({"case": f"URN train step S={size}, I={steps}, batch {batch} ({device}), {label}; "
                                 "reference: the same sweeps in plain torch, cross-entropy only",
                         "ours": round(1 / t_ours, 3), "reference": round(1 / t_ref, 3), "unit": "steps/s",
                         "ratio": round(t_ref / t_ours, 3)})
    # compaction: train a regulated URN on shells, then time one epoch before and after compaction
    # (the urn-shells regulators, trained until the network is sparse). The dense epoch grows
    # as S^2 and the compacted one with the few survivors, so the gain grows with S.
    data = shells(n_train=2000 if quick else 5_000, n_test=100)
    xs = torch.as_tensor(data.x_train, device=device)
    ys = torch.as_tensor(data.y_train, device=device)
    for size in ((300,) if quick else (1000, 2000)):
        net = URN(10, 3, size=size, steps=steps, c_weight=1e-3, c_activity=1e-4, seed=0).to(device)
        train_urn(net, data.x_train, data.y_train, epochs=5 if quick else 30, ramp_epochs=3 if quick else 10,
                  device=device)

        def epoch():
            training_epoch(net, xs, ys, 128)

        before = _median_time(epoch, 3, device)
        edges = net.n_edges
        net.compact()
        epoch()  # the first epoch after an edit builds the new execution plan
        after = _median_time(epoch, 3, device)
        rows.append({"case": f"compaction: one epoch of S={size} URN after shells training, {edges:,} -> "
                             f"{net.n_edges:,} edges ({device}); reference = the same net before compaction",
                     "ours": round(after, 4), "reference": round(before, 4), "unit": "s/epoch",
                     "ratio": round(before / after, 2)})
    return rows


from .graphbatch import bench_graphbatch  # noqa: E402

BENCHMARKS = {"graphnet": bench_graphnet, "urn": bench_urn, "graphbatch": bench_graphbatch}


def machine(device: str) -> str:
    desc = f"{platform.system()} {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    if device.startswith("cuda"):
        desc += f", {torch.cuda.get_device_name()}"
    return desc


def run_benchmark(name: str, quick: bool = False, device: str = "cpu", out_dir=Path("docs/results/bench")) -> dict:
    if name not in BENCHMARKS:
        raise UnknownNameError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    device = _check_device(device)
    make_output_dir(out_dir, "--out")  # before the benchmark runs, not after
    rows = BENCHMARKS[name](quick=quick, device=device)
    result = {"machine": machine(device), "rows": rows}
    print(markdown_table(["case", "ours", "reference", "unit", "ratio (>1: ours better)"],
                         [[r["case"], r["ours"], r["reference"], r["unit"], r["ratio"]] for r in rows]))
    # a --quick run never overwrites the full one's file
    suffix = ("" if device == "cpu" else f"-{device.replace(':', '')}") + ("-quick" if quick else "")
    path = Path(out_dir) / f"{name}{suffix}.json"
    atomic_write_bytes(path, json.dumps(result, indent=1).encode())
    print(f"wrote {path}")
    return result
