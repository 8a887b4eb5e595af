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
        value = [v for v in value.split(",") if v]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}={config[key]!r} must be a non-empty comma-separated string or list of strings")
    return value
