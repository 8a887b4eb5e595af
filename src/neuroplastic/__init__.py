"""neuroplastic: neural networks that change their own weights and their own architecture."""
from . import rules
from .core.edits import Edits, NeuronRef
from .errors import (CheckpointError, ConfigError, CycleError, EditError, NeuroplasticError, RunError,
                     TeacherError, UnknownNameError)
from .core.graph import GraphNet
from .core.batch import GraphBatch

__all__ = ["GraphNet", "GraphBatch", "Edits", "NeuronRef", "rules", "NeuroplasticError", "ConfigError",
           "EditError", "CycleError", "CheckpointError", "TeacherError", "UnknownNameError", "RunError"]
__version__ = "0.1.0"

from .core.checkpoint import load, restore_optimizer, save  # noqa: E402
from .train.distill import distill  # noqa: E402
from .train.urn import URN, train_urn  # noqa: E402
from .train.supervised import train_supervised  # noqa: E402
from .core.trace import BatchTrace, Trace  # noqa: E402
from . import analysis  # noqa: E402
from . import som  # noqa: E402
from . import evolve  # noqa: E402
from . import lifelong  # noqa: E402
from . import prune  # noqa: E402

__all__ += ["save", "load", "restore_optimizer", "distill", "URN", "train_urn", "train_supervised",
            "Trace", "BatchTrace", "analysis", "som", "evolve", "lifelong", "prune"]
