"""GNG training throughput against minigng, at 100 / 1,000 / 2,000 / 5,000 units.

Three models, ours batched, ours sequential and minigng, get the same data (2-D rings,
`npl.som.data`), Fritzke's parameters and the same signals: grown to the unit count with an
insertion every GROW_LAM signals, then settled for SETTLE_SIGNALS signals at the paper's
λ = 100. Their quantisation errors on held-out points of the same rings are measured there,
after the same signals; then each trains in interleaved timed rounds. CPU runs use one torch
thread, as minigng runs on one NumPy thread.
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from ..errors import ConfigError
from ..report import markdown_table
from ..som import GNG, quantization_error
from ..som.data import shape
from .timing import one_thread, sync

PARAMS = {"eps_b": 0.2, "eps_n": 0.006, "a_max": 50, "lam": 100, "alpha": 0.5, "d": 0.995}
GROW_LAM = 10             # insertion period while growing to the measured size (both models)
SETTLE_SIGNALS = 20_000   # signals at λ = 100 after growing, before the timing
CHUNK = 2_000             # minigng's partial_fit makes one pass over what it is given
ROUNDS = 3


def _reference():
    try:
        from minigng import MiniGNG
    except ImportError:
        raise ConfigError("bench gng compares against minigng, which is not installed: "
                          "pip install 'neuroplastic[classic]'") from None
    return MiniGNG


def _minigng_nodes(model) -> np.ndarray:
    return np.array([u.prototype for u in model.units], dtype=np.float32)


def bench_gng(quick: bool = False, device: str = "cpu") -> list[dict]:
    """GNG training signals/s vs minigng at 100-5,000 units on 2-D rings, QE side by side."""
    MiniGNG = _reference()
    with one_thread(device):
        rows = [_row(MiniGNG, n, quick, device) for n in ((100, 500) if quick else (100, 1000, 2000, 5000))]
    print(markdown_table(["case", "QE ours", "QE ours sequential", "QE minigng", "QE ratio (ours / minigng)",
                          "units ours / minigng", "ours sequential (signals/s)"],
                         [[r["case"], r["qe_ours"], r["qe_sequential"], r["qe_reference"], r["qe_ratio"],
                           f"{r['nodes_ours']} / {r['nodes_reference']}", r["ours_sequential"]] for r in rows]))
    return rows


def _row(MiniGNG, n: int, quick: bool, device: str) -> dict:
    data = shape("rings", 40_000, seed=0)
    train, test = data[:30_000], torch.as_tensor(data[30_000:])
    signals = torch.as_tensor(train).to(device)
    settle = 2_000 if quick else SETTLE_SIGNALS
    at = [0]  # the next row of the training stream, shared so that both see the same signals

    def stream(count: int) -> np.ndarray:
        idx = (at[0] + np.arange(count)) % len(train)
        at[0] += count
        return idx

    # grow all three to n units on the same signals, then settle at λ = 100
    ours = GNG(2, n, seed=0, device=device, **{**PARAMS, "lam": GROW_LAM})
    sequential = GNG(2, n, seed=0, device=device, mode="sequential", **{**PARAMS, "lam": GROW_LAM})
    np.random.seed(0)
    ref = MiniGNG(max_units=n, sigma=GROW_LAM, max_edge_age=PARAMS["a_max"], eps_b=PARAMS["eps_b"],
                  eps_n=PARAMS["eps_n"], alpha=PARAMS["alpha"], d=PARAMS["d"])
    first = stream(CHUNK)  # places the two initial units, then one pass
    for model in (ours, sequential, ref):
        model.partial_fit(train[first])
    budget = 40 * n * GROW_LAM
    while min(ours.n_nodes, sequential.n_nodes, len(ref.units)) < n and at[0] < budget:
        idx = stream(CHUNK)
        for model in (ours, sequential):
            if model.n_nodes < n:
                model.train_signals(signals[idx])
        if len(ref.units) < n:
            ref.partial_fit(train[idx])
    ours.set_params(lam=PARAMS["lam"])
    sequential.set_params(lam=PARAMS["lam"])
    ref.sigma = PARAMS["lam"]
    for _ in range(max(1, settle // CHUNK)):
        idx = stream(CHUNK)
        ours.train_signals(signals[idx])
        sequential.train_signals(signals[idx])
        ref.partial_fit(train[idx])
    # quality after the same signals for all three; the timed rounds below give them different counts
    qe = {"ours": ours.quantization_error(test), "sequential": sequential.quantization_error(test),
          "reference": quantization_error(torch.as_tensor(_minigng_nodes(ref)), test)}
    units = {"ours": (ours.n_nodes, ours.n_edges), "sequential": (sequential.n_nodes, sequential.n_edges),
             "reference": (len(ref.units), len(ref.edges))}
    signals_seen = at[0]

    per_round = {"ours": 20_000 if not quick else 4_000, "sequential": 1_000 if not quick else 300,
                 "reference": 1_000 if not quick else 300}
    times: dict = {k: [] for k in per_round}
    for _ in range(2 if quick else ROUNDS):  # interleaved, so all three see the same machine load
        for key, model in (("ours", ours), ("sequential", sequential), ("reference", ref)):
            idx = stream(per_round[key])
            sync(device)
            started = time.perf_counter()
            if key == "reference":
                model.partial_fit(train[idx])
            else:
                model.train_signals(signals[idx])
            sync(device)
            times[key].append(time.perf_counter() - started)
    rate = {k: per_round[k] / statistics.median(v) for k, v in times.items()}
    where = f"{device}, 1 thread" if device == "cpu" else device
    return {"case": f"nodes={n}", "ours": round(rate["ours"]), "reference": round(rate["reference"]),
            "unit": "signals/s", "ratio": round(rate["ours"] / rate["reference"], 2),
            "ours_sequential": round(rate["sequential"]),
            "ratio_sequential": round(rate["sequential"] / rate["reference"], 2),
            "qe_ours": round(qe["ours"], 5), "qe_reference": round(qe["reference"], 5),
            "qe_sequential": round(qe["sequential"], 5), "qe_ratio": round(qe["ours"] / qe["reference"], 4),
            "nodes_ours": units["ours"][0], "nodes_sequential": units["sequential"][0],
            "nodes_reference": units["reference"][0], "edges_ours": units["ours"][1],
            "edges_sequential": units["sequential"][1], "edges_reference": units["reference"][1],
            "detail": f"GNG training on 2-D rings at {n:,} units ({where}): ours batched (auto batch) vs "
                      f"minigng {_version()}, same parameters {PARAMS}; grown with λ={GROW_LAM}, "
                      f"settled {settle:,} signals; QE = mean distance of {len(test):,} held-out points "
                      f"to the nearest unit, of all three after the same {signals_seen:,} signals, before the "
                      "timed rounds"}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("minigng")
    except PackageNotFoundError:
        return "(version unknown)"
