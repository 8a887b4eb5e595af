"""Path lengths over a graph's edges, vectorised over edges (frontier BFS and relaxation)."""
from __future__ import annotations

import torch


def shortest_path_lengths(n: int, src: torch.Tensor, dst: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Shortest-path distance from `start` neurons along edges (vectorised frontier BFS)."""
    src, dst = src.long(), dst.long()
    inf = n + 1
    dist = torch.full((n,), inf, dtype=torch.long)
    dist[start] = 0
    frontier = torch.zeros(n, dtype=torch.bool)
    frontier[start] = True
    k = 0
    while bool(frontier.any()):
        k += 1
        hit = torch.zeros(n, dtype=torch.bool)
        hit[dst[frontier[src]]] = True
        frontier = hit & (dist == inf)
        dist[frontier] = k
    return dist


def longest_path_lengths(n: int, src: torch.Tensor, dst: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Longest-path distance from `start` neurons along the edges of a DAG (vectorised
    relaxation, one pass per level); unreachable neurons get n + 1, as in `shortest_path_lengths`."""
    src, dst = src.long(), dst.long()
    dist = torch.full((n,), -1, dtype=torch.long)
    dist[start] = 0
    for _ in range(n):
        reached = dist[src] >= 0
        relaxed = dist.scatter_reduce(0, dst[reached], dist[src][reached] + 1, reduce="amax")
        if torch.equal(relaxed, dist):
            break
        dist = relaxed
    return torch.where(dist < 0, n + 1, dist)
