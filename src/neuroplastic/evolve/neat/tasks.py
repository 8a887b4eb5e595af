"""Batched fitness functions for NEAT: boolean functions (XOR, parity) as in neat-python's example."""
from __future__ import annotations

import itertools

import torch

from ...errors import ConfigError


def parity_table(bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All 2**bits inputs (rows of 0/1) and their parity (1 when an odd number are 1)."""
    x = torch.tensor(list(itertools.product((0.0, 1.0), repeat=bits)))
    return x, x.sum(1, keepdim=True) % 2


def parity_fitness(bits: int = 2):
    """fitness(pop) = 2**bits - sum of squared errors over the truth table (neat-python's XOR
    example's fitness for bits = 2: maximum 4, threshold 3.9)."""
    x, y = parity_table(bits)

    def fitness(pop) -> torch.Tensor:
        _one_output(pop, "XOR" if bits == 2 else f"{bits}-bit parity")
        out = pop(x.to(pop.weight.dtype))                       # (P, 2**bits, 1)
        return len(x) - (out - y.to(out.dtype)).pow(2).sum((1, 2))

    return fitness


xor_fitness = parity_fitness(2)


def solves_parity(net, bits: int = 2) -> bool:
    """Every output on the correct side of 0.5 (the usual reading of the paper's test)."""
    x, y = parity_table(bits)
    with torch.no_grad():
        out = net(x.to(next(iter(net.buffers())).dtype if not list(net.parameters()) else net.bias.dtype))
    return bool(((out.reshape(-1, 1) > 0.5).float() == y).all())


def paper_xor_fitness():
    """The 2002 paper's XOR fitness, (4 - sum of |error|)**2 (maximum 16). Its solved test, every
    output on the correct side of 0.5, is no fitness threshold: after each call, `fitness.solved`
    is a (P,) bool tensor of the genomes that pass it (run with no_fitness_termination = True and
    stop when `fitness.solved.any()`)."""
    x, y = parity_table(2)

    def fitness(pop) -> torch.Tensor:
        _one_output(pop, "XOR")
        out = pop(x.to(pop.weight.dtype))                       # (P, 4, 1)
        target = y.to(out.dtype)
        fitness.solved = ((out > 0.5).to(out.dtype) == target).all(2).all(1)
        return (len(x) - (out - target).abs().sum((1, 2))) ** 2

    fitness.solved = torch.zeros(0, dtype=torch.bool)
    return fitness


def _one_output(pop, task: str) -> None:
    """The parity fitnesses score one output against the truth table; another count would be
    broadcast against it silently."""
    if pop.n_out != 1:
        raise ConfigError(f"{task} is scored on one output; the genomes have num_outputs = {pop.n_out}")
