"""Several online runs' score curves on one chart: `python launch/curves.py OUT.png NAME=RUN_DIR ...`.

Each RUN_DIR is a run folder with the `curve.json` its rounds wrote (launch/srum.py writes it at the end). With
`--evals T`, rounds are scored by separate evaluation folders instead of the rounds' own (e.g. the full split at two
evaluation seeds): T is a glob with {run} (RUN_DIR's folder name) and {round}, e.g. 'runs/val-{run}-r{round}-s*',
each match holding a scores.json; the mean is plotted with the range across matches. `--base G` adds the starting
checkpoint's evaluations (a glob, e.g. 'runs/val-base-s*') to every run as round 0, at 0 min.
"""

from __future__ import annotations

import os
import sys

# launch/srum.py would shadow the `srum` package for scripts run from this folder: drop the folder from the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from srum.evaluation.curves import compare_curves, with_evaluations  # noqa: E402


def overall_scores(pattern: str) -> list[float]:
    """The overall score of each evaluation folder `pattern` matches (none: an empty list)."""
    files = [Path(f) / "scores.json" for f in sorted(glob.glob(pattern))]
    missing = [f for f in files if not f.is_file()]
    if missing:
        sys.exit(f"curves.py: {missing[0]} not found (that evaluation has not finished)")
    return [json.loads(f.read_text())["overall"] for f in files]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the chart (PNG)")
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR")
    parser.add_argument("--evals", metavar="T", help="glob of each round's evaluation folders, with {run} and {round}")
    parser.add_argument("--base", metavar="G", help="glob of the starting checkpoint's evaluation folders")
    args = parser.parse_args()
    if args.evals is not None and "{round}" not in args.evals:
        parser.error("--evals needs {round} (and {run}) in its glob, e.g. 'runs/val-{run}-r{round}-s*'")
    if args.base is not None and args.evals is None:
        parser.error("--base goes with --evals (the rounds' own scores already start from their base)")
    runs = {}
    for arg in args.runs:
        if "=" not in arg:
            parser.error(f"{arg!r}: expected NAME=RUN_DIR")
        name, folder = arg.split("=", 1)
        curve = Path(folder) / "curve.json"
        if not curve.is_file():
            sys.exit(f"curves.py: {curve} not found (the run writes it when its last round ends)")
        points = json.loads(curve.read_text())
        if args.evals is not None:
            scores = {p["round"]: overall_scores(args.evals.format(run=Path(folder).name, round=p["round"]))
                      for p in points}
            if args.base is not None:
                scores[0] = overall_scores(args.base)
            points = with_evaluations(points, scores)
        runs[name] = points
    print(compare_curves(args.out, runs))


if __name__ == "__main__":
    main()
