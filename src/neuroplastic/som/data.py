"""Seeded 2-D point sets for the GNG / DCS experiments and the benchmark.

  rings    two concentric rings (sklearn.datasets.make_circles), a manifold with a hole
  ring     one thin ring of radius 1: the graph should close into one cycle
  moons    two interleaved half circles (make_moons)
  blobs    five Gaussian clusters (make_blobs): the graph should split into components
  holes    a square plate with three round holes (uniform points, rejection sampled)
Every set is scaled to about [-1, 1]^2, float32.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError

SHAPES = ("rings", "ring", "moons", "blobs", "holes")


def ring(n: int, seed: int = 0, radius: float = 1.0, width: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, n)
    r = radius + rng.uniform(-width / 2, width / 2, n)
    return np.stack([r * np.cos(angle), r * np.sin(angle)], 1).astype(np.float32)


def holes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres, radii = np.array([[-0.45, 0.4], [0.45, 0.35], [0.0, -0.45]]), np.array([0.28, 0.22, 0.3])
    out = np.empty((0, 2))
    while len(out) < n:
        p = rng.uniform(-1, 1, (2 * n, 2))
        inside = (np.linalg.norm(p[:, None] - centres[None], axis=2) < radii).any(1)
        out = np.concatenate([out, p[~inside]])
    return out[:n].astype(np.float32)


def shape(name: str, n: int, seed: int = 0) -> np.ndarray:
    """n points of the 2-D set `name` (one of SHAPES), the same for the same seed."""
    from sklearn import datasets
    if name == "rings":
        x, _ = datasets.make_circles(n, factor=0.5, noise=0.03, random_state=seed)
    elif name == "ring":
        return ring(n, seed)
    elif name == "moons":
        x, _ = datasets.make_moons(n, noise=0.06, random_state=seed)
        x = (x - [0.5, 0.25]) / [1.5, 1.5]
    elif name == "blobs":
        x, _ = datasets.make_blobs(n, centers=5, cluster_std=0.6, center_box=(-8, 8), random_state=seed)
        x = (x - x.mean(0)) / np.abs(x - x.mean(0)).max()
    elif name == "holes":
        return holes(n, seed)
    else:
        raise ConfigError(f"unknown 2-D data set {name!r}; known: {', '.join(SHAPES)}")
    return np.asarray(x, dtype=np.float32)
