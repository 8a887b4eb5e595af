"""Structure analysis and drawing of GraphNets."""
from .draw import draw_graph
from .structure import structure

__all__ = ["draw_graph", "structure"]
