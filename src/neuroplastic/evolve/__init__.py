"""Gradient-free evolution: structure and weights change with no backpropagation.

`NEAT(config, seed)` (Stanley & Miikkulainen 2002) evolves a population held in tensors whose
phenotypes run as one GraphBatch; see docs/neat.md.
"""
from .neat import NEAT, CompleteExtinctionError, NEATConfig, Reporter, StdOutReporter, load_config

__all__ = ["NEAT", "NEATConfig", "load_config", "Reporter", "StdOutReporter", "CompleteExtinctionError"]
