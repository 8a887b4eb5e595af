"""Pruning that removes edges from a GraphNet (no masks): lottery tickets by iterative
magnitude pruning with rewinding (Frankle & Carbin 2019), and its controls."""
from .lottery import RewindPoint, Snapshot, check_options, find_tickets, prune, reinit, rewind, snapshot

__all__ = ["RewindPoint", "Snapshot", "check_options", "find_tickets", "prune", "reinit", "rewind", "snapshot"]
