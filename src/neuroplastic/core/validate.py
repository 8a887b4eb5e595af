"""One validator for the numbers, names and devices every part of the library takes.

scikit-learn style: a bad value is refused at the boundary with a message that names the
option, the value, and what was expected. numpy scalars count as the Python numbers they
stand for (configs are often built with numpy); bools never count as numbers.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from ..errors import ConfigError


def check_int(value, what: str, minimum: int | None = None, maximum: int | None = None,
              error=ConfigError) -> int:
    """An integer (numpy integers too, bools never) within [minimum, maximum], as a Python int."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise error(f"{what}={value!r} must be an integer{_range_text(minimum, maximum)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise error(f"{what}={value!r} must be an integer{_range_text(minimum, maximum)}")
    return value


def check_number(value, what: str, minimum: float | None = None, maximum: float | None = None, *,
                 above: float | None = None, below: float | None = None, error=ConfigError) -> float:
    """A finite real number (not a bool) with minimum <= value <= maximum and above < value <
    below where given, as a Python float."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise error(f"{what}={value!r} must be a finite number{_range_text(minimum, maximum, above, below)}")
    value = float(value)
    if ((minimum is not None and value < minimum) or (maximum is not None and value > maximum)
            or (above is not None and value <= above) or (below is not None and value >= below)):
        raise error(f"{what}={value!r} must be a finite number{_range_text(minimum, maximum, above, below)}")
    return value


def check_bool(value, what: str, error=ConfigError) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise error(f"{what}={value!r} must be true or false")
    return bool(value)


def check_choice(value, what: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{what}={value!r} is not supported; expected one of {sorted(choices)}")
    return value


def check_device(device) -> str:
    """'cpu', 'cuda' or 'cuda:N', and CUDA only where torch sees it."""
    device = str(device)
    if device != "cpu" and not (device == "cuda" or device.startswith("cuda:") and device[5:].isdigit()):
        raise ConfigError(f"device={device!r} must be 'cpu', 'cuda' or 'cuda:N'")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but torch sees no CUDA device; use device='cpu' here")
    return device


def plain(value):
    """numpy scalars, also inside lists, tuples and dicts, as the Python values they stand for.

    The checks test for Python types, and checkpoints and results.json must hold plain data,
    so values are converted once, at the boundary. np.bool_ becomes bool, and so is still
    refused wherever a bool is.
    """
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value) if type(value) in (list, tuple) else value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _range_text(minimum=None, maximum=None, above=None, below=None) -> str:
    parts = []
    if minimum is not None:
        parts.append(f">= {minimum}")
    if above is not None:
        parts.append(f"> {above}")
    if maximum is not None:
        parts.append(f"<= {maximum}")
    if below is not None:
        parts.append(f"< {below}")
    return (" " + " and ".join(parts)) if parts else ""
