"""`bench prune`: a pruned GraphNet against the dense MLP and against the same MLP masked with
`torch.nn.utils.prune`, at 20%, 10% and 3.6% of the weights remaining.

All three nets start from the same weights (GraphNet.mlp's nn.Linear initialisation, copied
into a torch.nn.Sequential). Pruning is one-shot, layer-wise, by magnitude of those initial
weights: every layer keeps the same share, so the pattern is scattered uniformly and no
neuron dies, the case where only a sparse kernel can help. Ours goes through
`neuroplastic.prune.prune` (one `Edits().remove_edges(...).remove_dead()`, then the edge
storage is packed); torch's reference is `prune.l1_unstructured` on every Linear with the same
amount, which removes the same weights (the pruned GraphNet then also drops the neurons left
without inputs or outputs, and their edges: the same function with fewer weights). Timed: an
Adam training step (cross-entropy, batch 256) and inference (batch 256, inference mode), in
interleaved rounds on one CPU thread.
"""
from __future__ import annotations

import statistics

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from ..core.graph import GraphNet
from ..prune import prune
from ..train.distill import sequential_mlp
from .timing import median_time, one_thread, train_step

SHAPE = (784, [2048, 2048], 10)
QUICK_SHAPE = (256, [512, 512], 10)
REMAINING = (0.2, 0.1, 0.036)
BATCH = 256


def _copy_into(net: GraphNet, ref: nn.Sequential) -> None:
    """GraphNet.mlp stores layer by layer, row-major (dst, src): each Linear's weight is a view."""
    plan = net.plan()
    linears = [m for m in ref if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lv, lin in zip(plan.levels, linears):
            lo, hi = lv.weight_slice
            lin.weight.copy_(net.weight[lo:hi].view_as(lin.weight))
            lin.bias.copy_(net.bias[lv.row_ids])


def _models(remaining: float, shape, seed: int = 0):
    n_in, hidden, n_out = shape
    ours = GraphNet.mlp(n_in, hidden, n_out, activation="relu", seed=seed)
    dense = sequential_mlp(n_in, hidden, n_out, activation="relu")
    _copy_into(ours, dense)
    masked = sequential_mlp(n_in, hidden, n_out, activation="relu")
    masked.load_state_dict(dense.state_dict())
    rate = 1 - remaining
    for lin in (m for m in masked if isinstance(m, nn.Linear)):
        torch_prune.l1_unstructured(lin, "weight", amount=rate)
    prune(ours, rate, scope="layer", output_rate=rate)
    x = torch.randn(64, n_in)
    with torch.no_grad():  # the same weights removed: the same function (dead neurons are folded)
        if not torch.allclose(ours(x), masked(x), atol=1e-4):
            raise RuntimeError("the pruned GraphNet and torch's masked MLP compute different functions")
    kept = sum(int(m.weight_mask.sum()) for m in masked if isinstance(m, nn.Linear))
    return ours, dense, masked, kept


def _timed(models: dict, x, y, quick: bool) -> dict:
    """{name: (train step s, inference s)}, medians of interleaved rounds."""
    steps, infers = {}, {}
    for name, model in models.items():
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        steps[name] = train_step(model, opt, x, y, loss_fn=nn.functional.cross_entropy)

        def infer(model=model):
            with torch.inference_mode():
                model(x)
        infers[name] = infer
        for _ in range(2):
            steps[name]()
            infer()
    inner, rounds = (2, 3) if quick else (3, 5)
    times = {name: ([], []) for name in models}
    for _ in range(rounds):  # interleaved, so every model sees the same machine state
        for name in models:
            times[name][0].append(median_time(steps[name], inner, "cpu"))
            times[name][1].append(median_time(infers[name], inner, "cpu"))
    return {name: (statistics.median(t), statistics.median(i)) for name, (t, i) in times.items()}


def bench_prune(quick: bool = False, device: str = "cpu") -> list[dict]:
    """Pruned GraphNet vs dense MLP and torch.nn.utils.prune masks: train step and inference."""
    shape = QUICK_SHAPE if quick else SHAPE
    n_in, hidden, n_out = shape
    label = f"MLP {n_in}-{'-'.join(map(str, hidden))}-{n_out}"
    rows = []
    with one_thread(device):
        for remaining in REMAINING:
            torch.manual_seed(0)
            ours, dense, masked, kept = _models(remaining, shape)
            models = {"ours": ours.to(device), "dense": dense.to(device), "masked": masked.to(device)}
            x = torch.randn(BATCH, n_in, device=device)
            y = torch.randint(0, n_out, (BATCH,), device=device)
            t = _timed(models, x, y, quick)
            kernels = "/".join(lv.kernel for lv in ours.plan().levels)
            what = (f"{label}, {100 * remaining:g}% of weights left ({kept:,} kept by the masks; ours "
                    f"{ours.n_edges:,} edges after dead-neuron removal, level kernels {kernels}), "
                    f"batch {BATCH}, {device}")
            for phase, i in (("train step (Adam)", 0), ("inference", 1)):
                for ref, ref_label in (("dense", "dense torch.nn.Sequential"),
                                       ("masked", "torch.nn.utils.prune masks (l1_unstructured)")):
                    rows.append({"case": f"{phase}, {what}; reference: {ref_label}",
                                 "ours": round(1e3 * t["ours"][i], 3), "reference": round(1e3 * t[ref][i], 3),
                                 "unit": "ms", "ratio": round(t[ref][i] / t["ours"][i], 3)})
    return rows
