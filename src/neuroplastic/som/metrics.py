"""Quality of a vector-quantising graph: quantisation and topographic error, graph shape.

Definitions (the SOM conventions, see docs/classic.md):
  * quantisation error (QE): mean over samples of ||x - w_bmu(x)||, the Euclidean distance to
    the nearest unit (not squared);
  * topographic error (TE): the share of samples whose nearest and second-nearest units are
    not joined by an edge;
  * components: connected components of the graph; cycles: its cyclomatic number
    M - N + components, the number of independent cycles (0 for a forest, 1 for a ring).
All work on compact tensors: nodes (N, dim) and edges (M, 2) of node indices.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError

CHUNK = 4096  # rows of X per distance block, so memory stays O(CHUNK * N)


def _nearest_two(nodes: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances and indices of each row's two nearest nodes, (n, 2) each."""
    dist, idx = [], []
    k = min(2, len(nodes))
    for start in range(0, len(x), CHUNK):
        # exact differences: cdist's matrix-product form (its default past 25 rows) loses the
        # distances of data far from the origin to rounding
        block = torch.cdist(x[start:start + CHUNK], nodes, compute_mode="donot_use_mm_for_euclid_dist")
        d, i = block.topk(k, dim=1, largest=False)
        dist.append(d)
        idx.append(i)
    return torch.cat(dist), torch.cat(idx)


def _points(nodes, x) -> tuple[torch.Tensor, torch.Tensor]:
    """nodes (N, dim) and x (n, dim) as tensors of x's float dtype (arrays are accepted), or a
    ConfigError for shapes that do not fit."""
    x = torch.as_tensor(x)
    x = x if x.is_floating_point() else x.double()
    nodes = torch.as_tensor(nodes).to(x.dtype)
    if nodes.dim() != 2 or x.dim() != 2 or nodes.shape[1] != x.shape[1] or not len(nodes):
        raise ConfigError(f"nodes {tuple(nodes.shape)} and x {tuple(x.shape)} must be (N, dim) and (n, dim) "
                          "with the same dim and N >= 1")
    return nodes, x


def quantization_error(nodes, x) -> float:
    """Mean Euclidean distance of the rows of x to their nearest node."""
    nodes, x = _points(nodes, x)
    dist, _ = _nearest_two(nodes, x)
    return float(dist[:, 0].double().mean())


def topographic_error(nodes, edges, x) -> float:
    """Share of the rows of x whose two nearest nodes share no edge (1.0 with fewer than 2 nodes)."""
    nodes, x = _points(nodes, x)
    edges = torch.as_tensor(edges).long().reshape(-1, 2)
    if len(nodes) < 2:
        return 1.0
    _, idx = _nearest_two(nodes, x)
    n = len(nodes)
    keys = torch.cat([edges[:, 0] * n + edges[:, 1], edges[:, 1] * n + edges[:, 0]]).to(idx.device)
    linked = torch.isin(idx[:, 0] * n + idx[:, 1], keys)
    return float((~linked).double().mean())


def components(n: int, edges: torch.Tensor) -> torch.Tensor:
    """Component label of each of n nodes (the smallest node index in its component), by
    min-label propagation along the edges until nothing changes (at most the diameter steps)."""
    label = torch.arange(n, device=edges.device)
    if not len(edges):
        return label
    i, j = edges[:, 0].long(), edges[:, 1].long()
    while True:
        new = label.clone()
        new.scatter_reduce_(0, i, label[j], reduce="amin")
        new.scatter_reduce_(0, j, label[i], reduce="amin")
        new = new[new]  # pointer jumping: follow labels to their own label
        if torch.equal(new, label):
            return label
        label = new


def graph_stats(n: int, edges: torch.Tensor) -> dict:
    """{'components', 'cycles', 'mean_degree'} of a graph of n nodes."""
    n_components = int(torch.unique(components(n, edges)).numel()) if n else 0
    return {"components": n_components, "cycles": int(len(edges) - n + n_components),
            "mean_degree": 2 * len(edges) / n if n else 0.0}
