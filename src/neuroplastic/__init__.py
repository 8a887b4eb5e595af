"""neuroplastic: neural networks that change their own weights and their own architecture."""
from . import rules
from .edits import Edits, NeuronRef
from .errors import (CheckpointError, ConfigError, CycleError, EditError, NeuroplasticError,
                     TeacherError, UnknownNameError)
from .graph import GraphNet

__all__ = ["GraphNet", "Edits", "NeuronRef", "rules", "NeuroplasticError", "ConfigError",
           "EditError", "CycleError", "CheckpointError", "TeacherError", "UnknownNameError"]
__version__ = "0.1.0"

from .checkpoint import load, restore_optimizer, save  # noqa: E402
from .distill import distill  # noqa: E402
from .urn import URN, train_urn  # noqa: E402
from . import analysis  # noqa: E402

__all__ += ["save", "load", "restore_optimizer", "distill", "URN", "train_urn", "analysis"]
