"""Typed exceptions. Every bad input the library can name raises one of these.

They all derive from `NeuroplasticError`, which the CLI turns into one line on stderr and
exit status 2. Each also derives from the builtin a caller would naturally catch
(`ValueError`, `KeyError`-like lookups are `ValueError` too, so `except ValueError` works).
"""


class NeuroplasticError(Exception):
    """Base class: a problem with the caller's input, not a bug in the library."""


class ConfigError(NeuroplasticError, ValueError):
    """A configuration value is out of range, of the wrong type, or unknown."""


class EditError(NeuroplasticError, ValueError):
    """An Edits batch names a missing neuron or edge, or breaks a structural rule."""


class CycleError(EditError):
    """Adding an edge would close a cycle in a network evaluated as a DAG."""


class CheckpointError(NeuroplasticError, ValueError):
    """A checkpoint file is missing, truncated, tampered with, or not ours."""


class TeacherError(NeuroplasticError, ValueError):
    """A teacher's action does not fit the environment's action space."""


class UnknownNameError(ConfigError):
    """An environment id, experiment, model or benchmark name that is not registered."""


class RunError(NeuroplasticError, RuntimeError):
    """A run ended without a result through no fault of its settings (every NEAT species
    stagnated, say): the experiment runner names the job and keeps the other jobs' rows."""
