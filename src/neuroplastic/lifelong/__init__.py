"""Lifelong learning with networks that grow: Dynamically Expandable Networks (Yoon et al.
2018), and the continual-learning baselines it is compared with (fine-tuning, EWC, a network
per task)."""
from .baselines import EWC, FineTune, NetPerTask
from .den import DEN, DENConfig, validate_tasks

__all__ = ["DEN", "DENConfig", "EWC", "FineTune", "NetPerTask", "validate_tasks"]
