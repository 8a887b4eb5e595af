"""Reporters, neat-python style: objects told about each generation. None are on by default."""
from __future__ import annotations

import sys


class Reporter:
    """Override what you need; NEAT calls these in order every generation."""

    def start_generation(self, generation: int) -> None:
        pass

    def end_generation(self, row: dict) -> None:
        """`row` is the generation's entry of `NEAT.history`."""

    def found_solution(self, generation: int, fitness: float) -> None:
        pass

    def species_extinct(self, generation: int) -> None:
        pass


REPORTER_METHODS = tuple(name for name in vars(Reporter) if not name.startswith("_"))


class StdOutReporter(Reporter):
    """One line a generation (and a line when the threshold is met), like neat-python's."""

    def __init__(self, stream=None):
        self.stream = stream

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout)

    def end_generation(self, row: dict) -> None:
        self._print(f"gen {row['generation']:4d}  best {row['best_fitness']:.4f}  mean {row['mean_fitness']:.4f}  "
                    f"species {row['species']:3d}  hidden {row['mean_hidden']:.2f}  edges {row['mean_edges']:.2f}  "
                    f"evals {row['evaluations']}  {row['wall_s'] * 1000:.1f} ms")

    def found_solution(self, generation: int, fitness: float) -> None:
        self._print(f"fitness threshold met in generation {generation} (best {fitness:.4f})")

    def species_extinct(self, generation: int) -> None:
        self._print(f"all species stagnated in generation {generation}: a new random population")
