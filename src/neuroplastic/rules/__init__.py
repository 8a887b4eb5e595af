"""Plasticity rules: each reads statistics of a network and returns Edits."""
from .spm import SPM, SPMConfig

__all__ = ["SPM", "SPMConfig"]
