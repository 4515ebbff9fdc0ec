"""Teach a checkpoint's judge the verdicts of evaluations' judge on their saved images (see srum/cli/teach_judge.py).

    python launch/teach_judge.py --checkpoint checkpoints/shapes-tiny --from-eval runs/eval-train \
        --check runs/eval-base --out runs/shapes-tiny-taught-judge
"""

from __future__ import annotations

import os
import sys

# launch/srum.py would shadow the `srum` package for scripts run from this folder: drop the folder from the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from srum.cli.teach_judge import main  # noqa: E402

if __name__ == "__main__":
    main()
