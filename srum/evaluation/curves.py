"""Online-rounds curves: evaluation score against cumulative wall time, one point per round (round 0: the base)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on training machines
import matplotlib.pyplot as plt  # noqa: E402

from srum.utils.io import atomic_path  # noqa: E402


def score_curve(path: Path, points: list[dict], title: str = "") -> Path:
    """One run: `eval_overall` after each round against `seconds`/60, and the oracle score of each round's own
    samples at the time they were drawn (`drawn_at_seconds`), where the world has an oracle."""
    return compare_curves(path, {title or "run": points}, samples=True)


def with_evaluations(points: list[dict], scores: dict[int, list[float]]) -> list[dict]:
    """A run's points scored by separate evaluations instead of its rounds' own: `scores` maps a round to its
    evaluations' overall scores (e.g. the full split at several evaluation seeds; round 0: the base, at 0 s).
    Each point's `eval_overall` becomes their mean and `eval_each` keeps them; rounds without any are not scored."""
    out = [{**p, "eval_overall": None, "eval_each": None} for p in points if p["round"] != 0]
    if 0 in scores:
        out.insert(0, {"round": 0, "seconds": 0.0, "eval_overall": None, "eval_each": None})
    for p in out:
        each = scores.get(p["round"])
        if each:
            p.update(eval_overall=sum(each) / len(each), eval_each=list(each))
    return out


def compare_curves(path: Path, runs: dict[str, list[dict]], samples: bool = False) -> Path:
    """Several runs' `curve.json` points on one axis (val score against the rounds' wall time, in minutes)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
    for k, (name, points) in enumerate(runs.items()):
        color = f"C{k}"
        evals = [p for p in points if p.get("eval_overall") is not None]
        if evals:
            ax.plot([p["seconds"] / 60 for p in evals], [p["eval_overall"] for p in evals], "o-", color=color,
                    label=f"{name}: val score after the round" if samples else name)
            ranged = [p for p in evals if len(p.get("eval_each") or []) > 1]  # several evaluation seeds: their range
            ax.vlines([p["seconds"] / 60 for p in ranged], [min(p["eval_each"]) for p in ranged],
                      [max(p["eval_each"]) for p in ranged], color=color, alpha=0.6)
            for p in evals:
                ax.annotate(f"r{p['round']}", (p["seconds"] / 60, p["eval_overall"]), textcoords="offset points",
                            xytext=(3, -10), fontsize=7, color=color)
        drawn = [p for p in points if p.get("sample_truth_mean") is not None]
        if samples and drawn:
            ax.plot([p.get("drawn_at_seconds", p["seconds"]) / 60 for p in drawn],
                    [p["sample_truth_mean"] for p in drawn], "s--", color=color, alpha=0.5,
                    label=f"{name}: oracle score of the round's own samples")
    ax.set_xlabel("wall time of the rounds on 2 CPU cores, minutes (evaluation excluded)")
    ax.set_ylabel("evaluation score (the world's exact judge)")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
