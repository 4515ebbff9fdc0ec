"""One checkpoint whose weights are the mean of several (e.g. an online run's last rounds), for evaluation or use.

    python launch/average.py runs/srum-shapes-online/round{4,5,6}/export --out runs/srum-shapes-online/rounds4-6
    python launch/evaluate.py --checkpoint runs/srum-shapes-online/rounds4-6 --benchmark shapes --split val \
        --out runs/val-avg

Each checkpoint is loaded in float32 on the CPU in turn, beside a float32 running sum (BAGEL-7B: about 60 GB each).
"""

from __future__ import annotations

import os
import sys

# launch/srum.py would shadow the `srum` package for scripts run from this folder: drop the folder from the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from srum.averaging import average_checkpoints  # noqa: E402
from srum.models.registry import BACKENDS  # noqa: E402
from srum.utils.logging import setup_logging  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description="Average the weights of checkpoints of one model.")
    ap.add_argument("checkpoints", nargs="+", type=Path, help="two or more local checkpoint folders")
    ap.add_argument("--out", required=True, type=Path, help="new folder for the averaged checkpoint")
    ap.add_argument("--backend", default="bagel", choices=sorted(BACKENDS))
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="dtype the mean is stored in")
    args = ap.parse_args()
    setup_logging()
    try:
        average_checkpoints(args.checkpoints, args.out, args.backend, getattr(torch, args.dtype))
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        sys.exit(f"average.py: {e}")


if __name__ == "__main__":
    main()
