"""Option handling shared by the experiments: a preset over the defaults, the user's overrides
(an unknown key is one clear error), and comma-separated lists."""
from __future__ import annotations

from ..errors import ConfigError


def with_overrides(name: str, defaults: dict, preset: dict, overrides: dict) -> dict:
    """`defaults` updated by the preset (--quick / --full) and then by the user's overrides."""
    config = {**defaults, **preset}
    for key, value in overrides.items():
        if key not in defaults:
            raise ConfigError(f"unknown {name} option {key!r}; known: {', '.join(sorted(defaults))}")
        config[key] = value
    return config


def string_list(config: dict, key: str) -> list[str]:
    """config[key] as a non-empty list of strings ("a,b" and ["a", "b"] both)."""
    value = config[key]
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]  # "a, b" too
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}={config[key]!r} must be a non-empty comma-separated string or list of strings")
    return value


def layer_widths(config: dict, key: str = "hidden", example: str = "32,32", allow_none: bool = False) -> list[int]:
    """config[key] as a list of layer widths ("300,100", [300, 100] and 300 all); non-empty
    unless `allow_none` (then [] or "" is no hidden layer: inputs straight to outputs)."""
    from ..core.validate import check_int
    value = config[key]
    if isinstance(value, str):
        value = [int(h) for h in value.split(",") if h.strip().isdigit()] or value
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if allow_none and value in ([], ""):
        return []
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key}={config[key]!r} must be a list of layer widths, e.g. {example}")
    return [check_int(h, "hidden width", 1) for h in value]
