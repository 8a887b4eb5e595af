"""NEAT's fast paths give what the general code gives: Genomes.slots with a fixed prefix (the
inputs and outputs) and InnovationTable.new_connections for pairs that touch new nodes."""
import pytest
import torch

from neuroplastic.evolve.neat.genome import Genomes
from neuroplastic.evolve.neat.innovation import InnovationTable


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


def test_new_connections_number_as_connections():
    table = InnovationTable(10)
    table.connections(torch.tensor([0, 1, 2, 0]), torch.tensor([3, 3, 4, 4]))
    new_id = table.split_nodes(torch.tensor([2, 0, 2, 1]))  # two genomes split gene 2
    src = torch.stack([torch.tensor([0, 1, 0, 2]), new_id])
    dst = torch.stack([new_id, torch.tensor([3, 4, 3, 4])])
    other = InnovationTable.from_state(table.state())
    got, want = table.new_connections(src, dst), other.connections(src, dst)
    assert torch.equal(got, want)
    assert got[0, 0] == got[0, 2] and got[1, 0] == got[1, 2]  # the same split, the same genes
    for k, v in table.state().items():
        assert torch.equal(v, other.state()[k]) if torch.is_tensor(v) else v == other.state()[k]


@pytest.mark.parametrize("shape", [(3, 150, 6), (10, 1000, 11), (2, 50, 1000), (1, 3, 70000)])
def test_nansum_is_where_then_sum_to_the_bit(shape):
    # the distance sums |dw| with NaN for unmatched genes by nansum; it must round as the
    # masked sum it replaced does
    g = torch.Generator().manual_seed(shape[-1])
    x = torch.randn(shape, generator=g).abs()
    x[torch.rand(shape, generator=g) < 0.4] = float("nan")
    want = torch.where(x == x, x, 0.0).sum(-1)
    assert torch.equal(x.nansum(-1).view(torch.int32), want.view(torch.int32))


def test_discrete_actions_equal_argmax_for_two_actions_with_ties_infinities_and_nan():
    from neuroplastic.evolve.neat.envs import discrete_actions
    values = torch.tensor([0.0, 1.0, -1.0, float("nan"), float("inf"), -float("inf")])
    pairs = torch.cartesian_prod(values, values)  # every ordered pair, ties included
    assert torch.equal(discrete_actions(pairs), pairs.argmax(1))
    three = torch.randn(50, 3)
    assert torch.equal(discrete_actions(three), three.argmax(1))
