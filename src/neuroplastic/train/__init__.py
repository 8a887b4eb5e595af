"""Trainers that drive a network and a rule: policy distillation, the URN, plain supervised."""
