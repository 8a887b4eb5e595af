"""Benchmarks: ours against a reference measured side by side in the same run.

Each benchmark returns rows {case, ours, reference, unit, ratio}; ratio > 1 means ours is
better (higher throughput or lower latency). `run_benchmark` prints them as a table and
writes DIR/NAME.json in the format of DESIGN.md.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from ..core.checkpoint import atomic_write_bytes, make_output_dir
from ..core.validate import check_device
from ..errors import UnknownNameError
from ..report import markdown_table
from .gng import bench_gng
from .graphbatch import bench_graphbatch
from .graphnet import bench_graphnet
from .neat import bench_neat
from .prune import bench_prune
from .urn import bench_urn

BENCHMARKS = {"graphnet": bench_graphnet, "urn": bench_urn, "graphbatch": bench_graphbatch, "gng": bench_gng,
              "neat": bench_neat, "prune": bench_prune}


def machine(device: str) -> str:
    # the process default; a bench that times on one thread (bench/timing.one_thread) says so in its cases
    desc = (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
            f"threads by default (cases timed on one thread say so), torch {torch.__version__}")
    if device.startswith("cuda"):
        desc += f", {torch.cuda.get_device_name()}"
    return desc


def run_benchmark(name: str, quick: bool = False, device: str = "cpu", out_dir=Path("docs/results/bench")) -> dict:
    if name not in BENCHMARKS:
        raise UnknownNameError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    device = check_device(device)
    made = [d for d in (Path(out_dir), *Path(out_dir).parents) if not d.exists()]  # deepest first
    make_output_dir(out_dir, "--out")  # before the benchmark runs, not after
    try:
        rows = BENCHMARKS[name](quick=quick, device=device)
    except BaseException:  # a refused or interrupted run leaves no empty folders behind
        for folder in made:
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    result = {"machine": machine(device), "rows": rows}
    print(markdown_table(["case", "ours", "reference", "unit", "ratio (>1: ours better)"],
                         [[r["case"], r["ours"], r["reference"], r["unit"], r["ratio"]] for r in rows]))
    # a --quick run never overwrites the full one's file
    suffix = ("" if device == "cpu" else f"-{device.replace(':', '')}") + ("-quick" if quick else "")
    path = Path(out_dir) / f"{name}{suffix}.json"
    atomic_write_bytes(path, json.dumps(result, indent=1).encode())
    print(f"wrote {path}")
    return result
