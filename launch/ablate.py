"""Run SRUM ablations of a recipe: `python launch/ablate.py RECIPE.yaml [--variants ...] [key=value ...]`.

The command lives in `srum/cli/ablate.py` (its docstring has the details); installed, it is `srum-ablate`.
"""

import os
import sys

# This folder holds srum.py: run as a script, a file here comes first on sys.path and `srum.py` would shadow the
# `srum` package, so the folder is dropped from the path before the package is imported.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from srum.cli.ablate import main  # noqa: E402

if __name__ == "__main__":
    main()
