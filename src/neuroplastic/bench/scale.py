"""Rows of `bench graphnet` about scale: edits in array form on a million-edge net, measured
in training steps of that same net, and training memory against nn.Sequential."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import torch

from ..core.edits import EditIndex, Edits
from ..core.graph import GraphNet
from ..train.distill import sequential_mlp


def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def array_edit_rows(device: str, quick: bool) -> list[dict]:
    """Each array operation against one training step (Adam, batch 256) of the same net: the
    reference column is the step, so ratio = steps / operation (> 1: cheaper than a step)."""
    n_in, hidden, n_out = (256, [256, 128], 32) if quick else (512, [1024, 512], 10)
    rows = []
    for repeat in range(1 if quick else 3):
        net = GraphNet.mlp(n_in, hidden, n_out, seed=repeat).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        x, y = torch.randn(256, n_in, device=device), torch.randn(256, n_out, device=device)

        def step():
            opt.zero_grad(set_to_none=False)
            torch.nn.functional.mse_loss(net(x), y).backward()
            opt.step()
        for _ in range(3):
            step()
        step_s = statistics.median(_time(step) for _ in range(5))
        src, dst, w = net.edges()
        cut = torch.rand(len(src), generator=torch.Generator().manual_seed(repeat)) < 0.9
        cases = {"build the edit index": _time(lambda: EditIndex(net))}
        net.edit_index = EditIndex(net)
        cases["set every weight (one set_weights)"] = _time(
            lambda: net.apply_edits(Edits().set_weights(src, dst, w * 0.5), optimizer=opt))
        cases["remove 90% of the edges (one remove_edges)"] = _time(
            lambda: net.apply_edits(Edits().remove_edges(src[cut.to(src.device)], dst[cut.to(dst.device)]),
                                    optimizer=opt))
        rows.append((len(src), step_s, cases))
    n_edges = rows[0][0]
    out = []
    for name in rows[0][2]:
        ours = statistics.median(r[2][name] for r in rows)
        ref = statistics.median(r[1] for r in rows)
        out.append({"case": f"{name}, MLP {n_in}-{'-'.join(map(str, hidden))}-{n_out} ({n_edges:,} edges, {device}); "
                            "reference: one Adam training step of that net, batch 256 (goal: ratio >= 0.1)",
                    "ours": round(ours * 1e3, 2), "reference": round(ref * 1e3, 2), "unit": "ms",
                    "ratio": round(ref / ours, 3)})
    return out


# The peak is read from /proc/self/status (VmHWM, Linux): ru_maxrss survives exec, so a child
# of a big process would start from its parent's peak.
_MEMORY_SCRIPT = """
import json, resource, sys, torch
kind, n_in, hidden, n_out = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
import neuroplastic as npl
from neuroplastic.train.distill import sequential_mlp
torch.set_num_threads(1)

def peak_kb():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

base = peak_kb()
model = npl.GraphNet.mlp(n_in, hidden, n_out, seed=0) if kind == "ours" else sequential_mlp(n_in, hidden, n_out)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randn(256, n_in), torch.randn(256, n_out)
for _ in range(3):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
print((peak_kb() - base) / 1024)
"""


def memory_rows(device: str, quick: bool) -> list[dict]:
    """Peak resident memory of building and training (Adam, 3 steps, batch 256) above the
    import, each in a fresh process; CPU only (the device's allocator is another matter), and
    only in the full run (a net small enough for --quick fits in what the import reserved)."""
    if device != "cpu" or quick:
        return []
    n_in, hidden, n_out = 1024, [2048, 2048], 1024
    peaks = {}
    for kind in ("ours", "reference"):
        runs = []
        for _ in range(3):
            out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, kind, str(n_in), json.dumps(hidden),
                                  str(n_out)], capture_output=True, text=True, check=True)
            runs.append(float(out.stdout.strip().splitlines()[-1]))
        peaks[kind] = statistics.median(runs)
    n_params = sum(p.numel() for p in sequential_mlp(n_in, hidden, n_out).parameters())
    return [{"case": f"peak memory above the import, training MLP {n_in}-{'-'.join(map(str, hidden))}-{n_out} "
                     f"({n_params:,} params, Adam, batch 256) vs torch.nn.Sequential (goal: ratio >= 0.67, "
                     "i.e. at most 1.5x the memory)",
             "ours": round(peaks["ours"], 1), "reference": round(peaks["reference"], 1), "unit": "MB",
             "ratio": round(peaks["reference"] / peaks["ours"], 3)}]
