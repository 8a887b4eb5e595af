"""GraphBatch forward throughput against a Python loop of GraphNet forwards over the same nets."""
from __future__ import annotations

import statistics

import numpy as np
import torch

from ..core.batch import GraphBatch
from ..core.graph import GraphNet
from .timing import median_time, one_thread


def random_dags(count: int, n_in: int = 2, n_out: int = 1, seed: int = 0) -> list[GraphNet]:
    """NEAT-sized random DAGs: 5..30 neurons, 1-3 incoming edges per neuron, mixed depths.

    Hidden neurons are wired in id order; each draws its sources from all earlier neurons,
    and with a per-net probability `chain` one of them is the previous hidden neuron, so
    depth ranges from shallow (chain ~ 0) to a path through every hidden neuron (chain ~ 1).
    """
    rng = np.random.default_rng(seed)
    n_fixed = n_in + n_out
    nets = []
    for k in range(count):
        n_hidden = int(rng.integers(max(0, 5 - n_fixed), 31 - n_fixed))
        chain = rng.uniform()
        earlier = list(range(n_in))  # neurons a later one may read from
        src, dst = [], []
        for j in range(n_fixed, n_fixed + n_hidden):
            picks = set(rng.choice(earlier, size=min(len(earlier), int(rng.integers(1, 4))), replace=False).tolist())
            if j > n_fixed and rng.uniform() < chain:
                picks.add(j - 1)
            src += sorted(picks)
            dst += [j] * len(picks)
            earlier.append(j)
        for o in range(n_in, n_fixed):
            picks = set(rng.choice(earlier, size=min(len(earlier), int(rng.integers(1, 4))), replace=False).tolist())
            if n_hidden:
                picks.add(n_fixed + n_hidden - 1)  # the deepest hidden neuron always matters
            src += sorted(picks)
            dst += [o] * len(picks)
        nets.append(GraphNet.from_edges(n_in, n_out, n_hidden, src, dst, seed=seed * 100_003 + k))
    return nets


def bench_graphbatch(quick: bool = False, device: str = "cpu") -> list[dict]:
    """GraphBatch forward of P random NEAT-sized DAGs vs a Python loop of GraphNet forwards."""
    with one_thread(device):
        return _rows(quick, device)


def _rows(quick: bool, device: str) -> list[dict]:
    rows = []
    where = f"{device}, 1 thread" if device == "cpu" else device
    for P in ((100, 300) if quick else (1_000, 10_000)):
        nets = [net.to(device) for net in random_dags(P, seed=0)]
        pop = GraphBatch.from_nets(nets)
        depth = pop.depth()
        for B in (4, 64):
            x = torch.randn(B, nets[0].n_in, generator=torch.Generator().manual_seed(B)).to(device)
            with torch.no_grad():  # the two sides compute the same thing
                torch.testing.assert_close(pop(x), torch.stack([net(x) for net in nets]))

            def ours():
                with torch.no_grad():
                    pop(x)

            def reference():
                with torch.no_grad():
                    for net in nets:
                        net(x)

            ours()
            t_ours, t_ref = [], []
            for _ in range(3 if quick else 5):  # interleaved, so both see the same machine load
                t_ref.append(median_time(reference, 1 if P >= 10_000 else 3, device))
                t_ours.append(median_time(ours, 5, device))
            ours_rate = P * B / statistics.median(t_ours)
            ref_rate = P * B / statistics.median(t_ref)
            rows.append({"case": f"forward, P={P:,} random DAGs of 5-30 neurons (depth {int(depth.min())}-"
                                 f"{int(depth.max())}, mean {depth.float().mean():.1f}), batch {B} ({where}, "
                                 f"{pop._get_plan().kernel} kernel); reference: a Python loop of GraphNet forwards",
                         "ours": round(ours_rate), "reference": round(ref_rate),
                         "unit": "member-samples/s", "ratio": round(ours_rate / ref_rate, 2)})
    return rows
