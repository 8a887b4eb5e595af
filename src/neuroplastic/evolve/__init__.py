"""Gradient-free evolution: structure and weights change with no backpropagation.

`NEAT(config, seed)` (Stanley & Miikkulainen 2002) evolves a population held in tensors whose
phenotypes run as one GraphBatch; see docs/neat.md. `ES` is an evolution strategy (CMA-ES from
the `cma` library) over flat parameter vectors, and `HebbianControllers` / `StaticControllers`
are populations of controllers it evolves: per-synapse Hebbian rules (Najarro & Risi 2020) or
the weights themselves; see docs/hebbian.md.
"""
from .controllers import HebbianControllers, StaticControllers
from .es import ES
from .neat import NEAT, CompleteExtinctionError, NEATConfig, Reporter, StdOutReporter, load_config

__all__ = ["NEAT", "NEATConfig", "load_config", "Reporter", "StdOutReporter", "CompleteExtinctionError",
           "ES", "HebbianControllers", "StaticControllers"]
