"""`reward.source=mix`: several scorers' judgements of the same images and regions blended into one.

Each image's global score and each region's score become the weighted mean over the scorers that gave one (a scorer
that abstains, such as `uniform` or an unparseable answer, drops out of that mean); a score nobody gave stays None.
"""

from __future__ import annotations

from PIL import Image

from srum.rewards.judge import Judgement
from srum.rewards.regions import Region
from srum.rewards.sources import Scorer


def weighted_mean(values: list[float | None], weights: list[float]) -> float | None:
    """Σ w·v / Σ w over the values that are not None; None when all are."""
    pairs = [(v, w) for v, w in zip(values, weights, strict=True) if v is not None]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if pairs else None


class MixedScorer:
    def __init__(self, scorers: dict[str, Scorer], weights: dict[str, float]) -> None:
        if set(scorers) != set(weights) or not scorers:
            raise ValueError(f"scorers {sorted(scorers)} and weights {sorted(weights)} must name the same scorers")
        self.names = sorted(scorers)
        self.scorers, self.weights = scorers, [float(weights[n]) for n in self.names]

    def judge(self, images: list[Image.Image], prompts: list[str],
              regions_per_image: list[list[Region]]) -> list[Judgement]:
        per = [self.scorers[n].judge(images, prompts, regions_per_image) for n in self.names]
        out = []
        for i, regions in enumerate(regions_per_image):
            js = [p[i] for p in per]
            out.append(Judgement(
                weighted_mean([j.global_score for j in js], self.weights),
                [weighted_mean([j.region_scores[k] for j in js], self.weights) for k in range(len(regions))],
                list(regions),
                [f"{n}: {r}" for n, j in zip(self.names, js) for r in j.raw],
                sum(j.parse_failures for j in js)))
        return out
