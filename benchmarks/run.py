"""Run one benchmark: `python benchmarks/run.py graphnet|urn [--quick] [--device cuda]`.

The same as `neuroplastic bench NAME`: ours against a reference in the same run (a plain
torch.nn MLP of the same size, a dense torch URN step), printed side by side as a ratio and
written to docs/results/bench/NAME.json. The measurements live in neuroplastic/bench/ so
that the installed CLI can run them too. Run from the repository root.
"""
import sys

from neuroplastic.cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
