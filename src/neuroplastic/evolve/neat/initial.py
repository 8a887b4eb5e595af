"""The first population: every genome the same minimal structure (the paper's start), with
its own random weights, biases and responses drawn from the config's init distributions."""
from __future__ import annotations

import torch

from .genome import ACTIVATION_LIST, Genomes
from .mutate import init_activation, init_enabled, init_values


def initial_structure(cfg) -> tuple[list[int], list[int]]:
    """(src, dst) node ids of the initial genes, per `initial_connection` (neat-python's rules:
    `full` is `full_nodirect`, and with no hidden nodes both connect inputs to outputs)."""
    n_in, n_fixed, h = cfg.num_inputs, cfg.n_fixed, cfg.num_hidden
    inputs, outputs = range(n_in), range(n_in, n_fixed)
    hidden = range(n_fixed, n_fixed + h)
    kind = cfg.initial_connection.split()[0]
    if kind == "unconnected":
        return [], []
    pairs = [(i, o) for o in outputs for i in inputs] if not h or kind.endswith("_direct") else []
    pairs += [(i, j) for j in hidden for i in inputs] + [(j, o) for o in outputs for j in hidden]
    pairs = sorted(set(pairs), key=lambda p: (p[1], p[0]))
    return [p[0] for p in pairs], [p[1] for p in pairs]


def initial_population(cfg, pop_size: int, table, rng: torch.Generator) -> Genomes:
    src, dst = initial_structure(cfg)
    src_t, dst_t = torch.tensor(src, dtype=torch.long), torch.tensor(dst, dtype=torch.long)
    innov = table.connections(src_t, dst_t)
    G = max(1, len(src))
    P = pop_size
    conn_innov = torch.full((P, G), -1, dtype=torch.long)
    conn_src, conn_dst = torch.zeros(P, G, dtype=torch.long), torch.zeros(P, G, dtype=torch.long)
    if src:
        conn_innov[:] = innov
        conn_src[:], conn_dst[:] = src_t, dst_t
        if cfg.initial_connection.startswith("partial"):  # each gene kept with the given fraction
            keep = torch.rand(P, G, generator=rng) < float(cfg.initial_connection.split()[1])
            conn_innov = torch.where(keep, conn_innov, -1)
    N = cfg.n_fixed + cfg.num_hidden
    g = Genomes(innov=conn_innov, src=conn_src, dst=conn_dst,
                weight=init_values(cfg, "weight", (P, G), rng), enabled=init_enabled(cfg, (P, G), rng),
                node_id=torch.arange(N).repeat(P, 1), bias=init_values(cfg, "bias", (P, N), rng),
                response=init_values(cfg, "response", (P, N), rng), act=init_activation(cfg, (P, N), rng))
    g.bias[:, :cfg.num_inputs] = 0.0
    g.response[:, :cfg.num_inputs] = 1.0
    if cfg.output_activation != "same":
        g.act[:, cfg.num_inputs:cfg.n_fixed] = ACTIVATION_LIST.index(cfg.output_activation)
    return g.canonical()
