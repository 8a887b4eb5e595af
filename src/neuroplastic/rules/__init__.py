"""Plasticity rules behind one protocol (`Rule`): structural rules return Edits, weight rules
change weights with no autograd graph."""
from .base import RULES, Rule, RuleDriver, rule_from_state, rule_state
from .contrastive import ContrastiveHebbian
from .hebbian import Hebbian
from .spm import SPM, SPMConfig

__all__ = ["Rule", "RuleDriver", "RULES", "rule_state", "rule_from_state", "SPM", "SPMConfig", "Hebbian",
           "ContrastiveHebbian"]
