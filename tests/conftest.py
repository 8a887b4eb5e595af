import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

import neuroplastic as npl

# Property tests: a quick default for CI, and `HYPOTHESIS_PROFILE=thorough` (1,000 examples a
# property) to run before a change to the core lands.
settings.register_profile("default", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    np.random.seed(0)


def trained(net, steps: int = 3, lr: float = 1e-2, optimizer: str = "adam"):
    """A few optimizer steps so every state tensor is non-zero."""
    params = list(net.parameters())
    opt = {"adam": lambda: torch.optim.Adam(params, lr=lr),
           "adamw": lambda: torch.optim.AdamW(params, lr=lr, weight_decay=0.01),
           "sgd": lambda: torch.optim.SGD(params, lr=lr, momentum=0.9)}[optimizer]()
    x = torch.randn(16, net.n_in)
    for _ in range(steps):
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
    return opt


def check_invariants(net):
    """What every sequence of edits keeps: unique live edges between live neurons, zeros in
    dead slots, a topological order in DAG mode, and a running edit index that agrees with one
    rebuilt from the tensors (as after npl.load)."""
    from neuroplastic.core.edits import EditIndex
    src, dst, _ = net.edges()
    pairs = list(zip(src.tolist(), dst.tolist()))
    assert len(pairs) == len(set(pairs)) == net.n_edges
    alive = net.neuron_alive
    assert all(alive[s] and alive[d] for s, d in pairs)
    assert torch.all(net.weight.detach()[~net.edge_alive] == 0)
    assert torch.all(net.bias.detach()[~net.neuron_alive] == 0)
    if net.mode == "dag":
        level = net.levels()
        assert all(level[s] < level[d] for s, d in pairs)
    if net.edit_index is not None:
        fresh, index = EditIndex(net), net.edit_index
        assert all(torch.equal(a, b) for a, b in zip(fresh.live_edges(), index.live_edges()))
        n = min(len(fresh.alive), len(index.alive))
        assert fresh.alive[:n] == index.alive[:n] and not any(fresh.alive[n:]) and not any(index.alive[n:])


@pytest.fixture
def small_mlp():
    return npl.GraphNet.mlp(3, [5, 4], 2, seed=1)
