"""Timing helpers shared by the benchmarks: medians of repeated runs, device-synchronised."""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import torch
from torch import nn


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_time(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def train_step(model: nn.Module, opt, x, y, loss_fn=nn.functional.mse_loss):
    def step():
        opt.zero_grad(set_to_none=False)
        loss_fn(model(x), y).backward()
        opt.step()
    return step


@contextmanager
def one_thread(device: str):
    """Torch on one thread for the block (CPU only): the references here are single-threaded
    or run tiny ops that never go parallel, and on a shared 2-core machine a second OpenMP
    thread stalls whenever the other core is busy."""
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
