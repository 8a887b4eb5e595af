"""Plasticity rules: each reads statistics and returns Edits."""
