"""Run SRUM: `deepspeed [--num_gpus N] launch/srum.py RECIPE.yaml [key=value ...] [--dry-run] [--verbose]`.

The command lives in `srum/cli/run.py` (its docstring has the details); installed, `srum RECIPE.yaml ...` runs one
process and `deepspeed --module srum.cli.run RECIPE.yaml ...` several, like this script.
"""

import os
import sys

# This folder holds srum.py: run as a script, a file here comes first on sys.path and `srum.py` would shadow the
# `srum` package, so the folder is dropped from the path before the package is imported.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from srum.cli.run import main  # noqa: E402

if __name__ == "__main__":
    main()
