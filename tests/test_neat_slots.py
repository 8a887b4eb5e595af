"""Genomes.slots with a fixed prefix (NEAT's inputs and outputs) equals the plain left search."""
import pytest
import torch

from neuroplastic.evolve.neat.genome import Genomes


@pytest.mark.parametrize("fixed,n_nodes", [(0, 5), (3, 3), (3, 7), (6, 12), (3, 20)])
def test_slots_with_fixed_prefix_equal_the_binary_search(fixed, n_nodes):
    g = torch.Generator().manual_seed(fixed * 100 + n_nodes)
    P = 60
    hidden = torch.rand(P, n_nodes - fixed, generator=g).argsort(1) * 5 + fixed  # distinct, >= fixed
    hidden = torch.where(torch.rand(hidden.shape, generator=g) < 0.3, torch.iinfo(torch.long).max, hidden)
    hidden = hidden.sort(1).values
    node_id = torch.cat([torch.arange(fixed).expand(P, fixed), hidden], 1)
    node_id = torch.where(node_id == torch.iinfo(torch.long).max, -1, node_id)
    # a deleted node leaves a hole in the middle of a row (-1 between valid ids)
    if n_nodes > fixed:
        node_id[::3, fixed] = -1
    z = torch.zeros(P, 1, dtype=torch.long)
    pop = Genomes(z, z, z, torch.zeros(P, 1), torch.ones(P, 1, dtype=torch.bool), node_id,
                  torch.zeros(P, n_nodes), torch.ones(P, n_nodes), torch.zeros(P, n_nodes, dtype=torch.long))
    query = torch.where(torch.rand(P, 30, generator=g) < 0.5,
                        node_id.clamp(min=0).gather(1, torch.randint(n_nodes, (P, 30), generator=g)),
                        torch.randint(-1, 5 * n_nodes + fixed, (P, 30), generator=g))
    key = torch.where(node_id >= 0, node_id, -1).cummax(1).values
    expected = torch.searchsorted(key, query).clamp(max=n_nodes - 1)
    assert torch.equal(pop.slots(query, fixed), expected)
