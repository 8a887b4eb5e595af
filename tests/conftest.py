import numpy as np
import pytest
import torch

import neuroplastic as npl


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
