"""NEAT, vectorised: genomes in padded tensors, phenotypes as GraphBatch members."""
from .config import NEATConfig, load_config
from .neat import NEAT, CompleteExtinctionError
from .reporting import Reporter, StdOutReporter

__all__ = ["NEAT", "NEATConfig", "load_config", "Reporter", "StdOutReporter", "CompleteExtinctionError"]
