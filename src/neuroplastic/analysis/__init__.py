"""Structure analysis and drawing of GraphNets."""
from .draw import draw_graph

__all__ = ["draw_graph"]
