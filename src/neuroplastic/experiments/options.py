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


def check_seed_ranges(last_training: int, training_episodes: int, validation_first: int | None = None,
                      validation_episodes: int = 0, validation_key: str = "validate_episodes") -> None:
    """Training, validation and held-out episodes must never share a reset seed: a score on
    episodes the search has seen is not a held-out score. `last_training` is the largest reset
    seed a run trains on (the last seed's, after `training_episodes` episodes)."""
    from ..evolve.neat.envs import HELD_OUT_SEED
    validating = validation_first is not None and validation_episodes > 0
    limit, what = (validation_first, "validation") if validating else (HELD_OUT_SEED, "held-out")
    if last_training >= limit:
        raise ConfigError(f"the last seed's {training_episodes} training episodes (generations x episodes) reach "
                          f"reset seed {last_training}, into the {what} episodes' (from {limit}); lower seeds, "
                          "generations or episodes")
    if validating and validation_first + validation_episodes > HELD_OUT_SEED:
        raise ConfigError(f"{validation_key}={validation_episodes} reaches the held-out episodes' reset seeds "
                          f"(from {HELD_OUT_SEED}); at most {HELD_OUT_SEED - validation_first}")
