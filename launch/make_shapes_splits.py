"""Write the ShapesWorld prompt files (`<category>_<split>.txt`, T2I-CompBench format) into a folder.

    python launch/make_shapes_splits.py runs/shapes-prompts [--seed 0]
"""

from __future__ import annotations

import os
import sys

# launch/srum.py would shadow the `srum` package for scripts run from this folder: drop the folder from the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse

from srum.utils.logging import setup_logging
from srum.worlds.shapes.splits import write_splits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    setup_logging()
    for category, counts in write_splits(args.out_dir, args.seed).items():
        print(category, counts)


if __name__ == "__main__":
    main()
