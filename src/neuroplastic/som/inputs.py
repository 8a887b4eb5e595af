"""The one check of the samples and labels every model of som/ takes (one clear line each)."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError


def check_samples(x, dim: int | None, *, what: str = "X", min_rows: int = 1, dtype=torch.float32,
                  device: str = "cpu") -> torch.Tensor:
    """x as a (n, dim) float tensor on `device`; a ConfigError names what is wrong with it."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.dtype.is_complex or t.dtype == torch.bool:
            raise ConfigError(f"{what} must hold real numbers, not {t.dtype}")
    else:
        try:
            a = np.asarray(x)
        except (TypeError, ValueError):
            raise ConfigError(f"{what} must be a numeric (n, {dim or 'dim'}) array") from None
        if a.dtype.kind not in "iuf":
            raise ConfigError(f"{what} must be a numeric (n, {dim or 'dim'}) array, got dtype {a.dtype}")
        t = torch.as_tensor(a)
    if t.dim() != 2 or (dim is not None and t.shape[1] != dim):
        raise ConfigError(f"{what} has shape {tuple(t.shape)}; expected (n, {dim or 'dim'})")
    if len(t) < min_rows:
        raise ConfigError(f"{what} has {len(t)} rows; at least {min_rows} needed")
    t = t.to(device=device, dtype=dtype)
    if not bool(torch.isfinite(t).all()):
        raise ConfigError(f"{what} holds {int((~torch.isfinite(t)).sum())} NaN or infinite values")
    # squared distances of such values overflow the float type (float32: |x| above ~1e18), and
    # every distance would then read inf or NaN
    limit = torch.finfo(dtype).max ** 0.5 / (4 * max(1, t.shape[1]))
    if len(t) and float(t.abs().max()) > limit:
        raise ConfigError(f"{what} holds values up to {float(t.abs().max()):.3g}; their squared distances overflow "
                          f"{dtype} (keep |x| below {limit:.3g}, e.g. rescale the data)")
    return t


def check_labels(y, n: int, *, what: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """(class ids 0..K-1 of the n samples, the K class values in sorted order)."""
    a = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if a.ndim != 1 or len(a) != n:
        raise ConfigError(f"{what} has shape {a.shape}; expected ({n},), one class label per sample")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ConfigError(f"{what} holds NaN or infinite values")
    classes, ids = np.unique(a, return_inverse=True)
    if len(classes) < 2:
        raise ConfigError(f"{what} holds {len(classes)} class; at least 2 needed")
    return ids.astype(np.int64), classes
