"""Evaluate a checkpoint: `python launch/evaluate.py --checkpoint DIR --benchmark shapes|t2i-compbench --out DIR`.

The command lives in `srum/cli/evaluate.py` (its docstring has the details); installed, it is `srum-eval`.
"""

import os
import sys

# This folder holds srum.py: run as a script, a file here comes first on sys.path and `srum.py` would shadow the
# `srum` package, so the folder is dropped from the path before the package is imported.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from srum.cli.evaluate import main  # noqa: E402

if __name__ == "__main__":
    main()
