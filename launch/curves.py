"""Several online runs' score curves on one chart: `python launch/curves.py OUT.png NAME=RUN_DIR ...`.

Each RUN_DIR is a run folder with the `curve.json` its rounds wrote (launch/srum.py writes it at the end).
"""

from __future__ import annotations

import os
import sys

# launch/srum.py would shadow the `srum` package for scripts run from this folder: drop the folder from the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from srum.evaluation.curves import compare_curves  # noqa: E402


def main() -> None:
    if len(sys.argv) < 3 or any("=" not in a for a in sys.argv[2:]):
        sys.exit(__doc__)
    runs = {}
    for arg in sys.argv[2:]:
        name, folder = arg.split("=", 1)
        curve = Path(folder) / "curve.json"
        if not curve.is_file():
            sys.exit(f"curves.py: {curve} not found (the run writes it when its last round ends)")
        runs[name] = json.loads(curve.read_text())
    print(compare_curves(Path(sys.argv[1]), runs))


if __name__ == "__main__":
    main()
