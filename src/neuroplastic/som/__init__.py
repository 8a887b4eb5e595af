"""Self-organising growing networks: Growing Neural Gas (Fritzke 1995) and Dynamic Cell
Structures (Bruske & Sommer 1995), with their quality metrics. docs/classic.md describes them."""
from .dcs import DCS, DCSGCS, DCSParams, GCSParams
from .gng import GNG, GNGParams
from .metrics import graph_stats, quantization_error, topographic_error

__all__ = ["GNG", "GNGParams", "DCS", "DCSGCS", "DCSParams", "GCSParams", "quantization_error",
           "topographic_error", "graph_stats"]
