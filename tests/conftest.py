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


@pytest.fixture
def small_mlp():
    return npl.GraphNet.mlp(3, [5, 4], 2, seed=1)
