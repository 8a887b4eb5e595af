"""`bench urn`: the URN's training step against the same sweeps in plain torch, and the speed-up
of lifetime compaction."""
from __future__ import annotations

import torch
from torch import nn

from .timing import median_time, train_step


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

        step_ours_executor = train_step(ours, opt_ours, x, y, nn.functional.cross_entropy)
        step_ref = train_step(ref, opt_ref, x, y, nn.functional.cross_entropy)

        def step_ours_full():
            loss, _ = ours.loss(x, y)
            opt_ours.zero_grad(set_to_none=False)
            loss.backward()
            opt_ours.step()
            ours.proximal_step(opt_ours)

        for fn in (step_ours_executor, step_ours_full, step_ref):
            fn()
        repeats = 3 if size >= 5000 or quick else 10
        t_ref = median_time(step_ref, repeats, device)
        for label, fn in (("cross-entropy only", step_ours_executor),
                          ("full URN loss: + activity L1 + proximal L1 on W", step_ours_full)):
            t_ours = median_time(fn, repeats, device)
            rows.append({"case": f"URN train step S={size}, I={steps}, batch {batch} ({device}), {label}; "
                                 "reference: the same sweeps in plain torch, cross-entropy only",
                         "ours": round(1 / t_ours, 3), "reference": round(1 / t_ref, 3), "unit": "steps/s",
                         "ratio": round(t_ref / t_ours, 3)})
    rows += _sparse_rows(quick, device)
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

        before = median_time(epoch, 3, device)
        edges = net.n_edges
        net.compact()
        epoch()  # the first epoch after an edit builds the new execution plan
        after = median_time(epoch, 3, device)
        rows.append({"case": f"compaction: one epoch of S={size} URN after shells training, {edges:,} -> "
                             f"{net.n_edges:,} edges ({device}); reference = the same net before compaction",
                     "ours": round(after, 4), "reference": round(before, 4), "unit": "s/epoch",
                     "ratio": round(before / after, 2)})
    return rows


def _sparse_rows(quick: bool, device: str) -> list[dict]:
    """A URN cut down to a share of its edges (at random: what lifetime compaction leaves
    mid-run) trains on the kernel auto picks (CSR below SPARSE_MAX_DENSITY_RECURRENT) against
    the same net on the dense kernel, W as an S x S matrix as plain torch would hold it."""
    import copy

    from ..core.edits import Edits
    from ..train.urn import URN
    rows, size, batch = [], 500 if quick else 2000, 128
    torch.manual_seed(0)
    x = torch.randn(batch, 10, device=device)
    y = torch.randint(0, 3, (batch,), device=device)
    for density in ((0.05,) if quick else (0.005, 0.02, 0.05)):
        net = URN(10, 3, size=size, steps=4, c_weight=1e-3, seed=0)
        src, dst, _ = net.edges()
        cut = torch.rand(len(src), generator=torch.Generator().manual_seed(0)) > density
        net.apply_edits(Edits().remove_edges(src[cut], dst[cut]))
        net.pack_edges()
        timed = {}
        for kernel in ("auto", "dense"):
            model = copy.deepcopy(net).to(device)
            model.kernel = kernel
            model._plan = None
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            step = train_step(model, opt, x, y, nn.functional.cross_entropy)
            step()
            timed[kernel] = (median_time(step, 3 if quick else 5, device), model.plan().sparse)
        (t_auto, sparse), (t_dense, _) = timed["auto"], timed["dense"]
        rows.append({"case": f"URN train step S={size}, I=4, batch {batch} ({device}), {net.n_edges:,} edges "
                             f"({100 * density:g}% of the pairs): kernel auto ({'CSR' if sparse else 'dense'}); "
                             "reference: the same net with W as a dense S x S matrix",
                     "ours": round(1 / t_auto, 3), "reference": round(1 / t_dense, 3), "unit": "steps/s",
                     "ratio": round(t_dense / t_auto, 2)})
    return rows
