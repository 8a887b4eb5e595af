"""Genome tensors -> GraphBatch, in one pass over the whole population (no loop over genomes).

A node computes act(slope * (bias + response * sum_i w_i x_i)) as in neat-python, whose
sigmoid and tanh have slopes 5 and 2.5. The slope and the response are folded into the
phenotype's weights and bias, so the GraphBatch (and the exported GraphNet) runs the plain
activation with weight' = slope * response * w and bias' = slope * bias, exactly.
"""
from __future__ import annotations

import torch

from ...core.batch import GraphBatch, activation_code
from .config import ACTIVATIONS
from .genome import Genomes

_CODES = torch.tensor([activation_code(fn) for fn, _ in ACTIVATIONS.values()], dtype=torch.int8)
_SLOPES = torch.tensor([slope for _, slope in ACTIVATIONS.values()])


def phenotypes(genomes: Genomes, n_in: int, n_out: int, validate: bool = False) -> GraphBatch:
    """Every genome as a member of one GraphBatch (DAG mode); member i is genome i.
    `validate=True` checks the result as GraphBatch checks any tensors (for genomes read from
    a file, which NEAT's operators did not make)."""
    # canonical rows (a population's) hold enabled = False and bias = 0 in every empty slot,
    # so neither needs the valid mask; the copy keeps the batch's buffer its own
    live = genomes.enabled.clone()
    G = live.shape[1]
    slots = genomes.slots(torch.cat([genomes.src, genomes.dst], 1), n_in + n_out)  # both ends at once
    src = torch.where(live, slots[:, :G], 0)
    dst = torch.where(live, slots[:, G:], 0)
    act = genomes.act.reshape(-1)
    slope = _SLOPES.to(genomes.weight.dtype).index_select(0, act).view_as(genomes.act)
    gain = (slope * genomes.response).gather(1, dst)
    weight = torch.where(live, genomes.weight * gain, 0.0)
    bias = genomes.bias * slope
    bias[:, :n_in] = 0.0
    codes = _CODES.index_select(0, act).view_as(genomes.act)
    # the tensors are fresh and hold NEAT's invariants (canonical rows, no duplicate or cyclic
    # genes, inputs and outputs always present), so the batch takes them without copies or checks
    return GraphBatch(n_in, n_out, src, dst, weight, live, bias, codes, genomes.node_valid, mode="dag",
                      validate=validate)
