"""The online-rounds curve: evaluation score against cumulative wall time, one point per round (round 0: base)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on training machines
import matplotlib.pyplot as plt  # noqa: E402

from srum.utils.io import atomic_path  # noqa: E402


def score_curve(path: Path, points: list[dict], title: str = "") -> Path:
    """Plot `eval_overall` (and the round's own samples' truth score, where known) against `seconds`/60."""
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    evals = [(p["seconds"] / 60, p["eval_overall"]) for p in points if p.get("eval_overall") is not None]
    samples = [(p["seconds"] / 60, p["sample_truth_mean"]) for p in points if p.get("sample_truth_mean") is not None]
    if evals:
        ax.plot(*zip(*evals), "o-", color="tab:blue", label="val score after the round")
        for (x, y), p in zip(evals, [p for p in points if p.get("eval_overall") is not None]):
            ax.annotate(f"r{p['round']}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
    if samples:
        ax.plot(*zip(*samples), "s--", color="tab:orange", alpha=0.7, label="oracle score of the round's samples")
    ax.set_xlabel("wall time of the rounds, minutes (evaluation excluded)")
    ax.set_ylabel("oracle score")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    if evals or samples:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
