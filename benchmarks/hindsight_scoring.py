"""Oracle scoring for hindsight relabelling: one parse per image (`OracleScorer.judge`) against one parse per
(image, prompt variant) pair, the way it scored before; same images, variants and regions, interleaved repeats.

Hindsight relabelling (`reward.hindsight=[shape,relation]`) judges every image of a round under each variant of its
prompt (17 on average on ShapesWorld), so the oracle's image parsing, not its checks, sets the score stage's time.

    OMP_NUM_THREADS=1 python benchmarks/hindsight_scoring.py [--images 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from srum.config import RegionsConfig
from srum.rewards.judge import Judgement
from srum.worlds.shapes import world
from srum.worlds.shapes.grammar import CATEGORIES, mismatch, sample_spec, to_text
from srum.worlds.shapes.layout import sample_scene
from srum.worlds.shapes.regions import ComponentsProposer
from srum.worlds.shapes.render import render
from srum.worlds.shapes.reward import OracleScorer


class _ParseEveryPair(OracleScorer):
    """The scorer as it was: every (image, prompt) pair parses its image afresh."""

    def judge(self, images, prompts, regions_per_image) -> list[Judgement]:
        return [OracleScorer.judge(self, [im], [p], [r])[0] for im, p, r in zip(images, prompts, regions_per_image)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    images, asked = [], []
    for i in range(args.images):  # pictures that miss their prompt by one attribute, as a model's often do
        spec = sample_spec(CATEGORIES[i % len(CATEGORIES)], rng)
        images.append(render(sample_scene(spec, rng), 64, rng))
        asked.append(to_text(mismatch(spec, rng)))
    regions = ComponentsProposer(RegionsConfig(proposer="world", max_regions=4, min_area_frac=0.01)).propose(images)
    pairs = [(i, v) for i, p in enumerate(asked) for v in world.prompt_variants(p, ["shape", "relation"])]
    batch = ([images[i] for i, _ in pairs], [v for _, v in pairs], [list(regions[i]) for i, _ in pairs])
    times: dict[str, list[float]] = {"parse once": [], "parse every pair": []}
    outputs = {}
    for _ in range(args.repeats):
        for name, scorer in (("parse once", OracleScorer()), ("parse every pair", _ParseEveryPair())):
            t0 = time.perf_counter()
            outputs[name] = scorer.judge(*batch)
            times[name].append(time.perf_counter() - t0)
    same = all((a.global_score, a.region_scores) == (b.global_score, b.region_scores)
               for a, b in zip(outputs["parse once"], outputs["parse every pair"], strict=True))
    once, every = statistics.median(times["parse once"]), statistics.median(times["parse every pair"])
    print(f"{args.images} images, {len(pairs)} (image, variant) pairs, median of {args.repeats}")
    print(f"parse once: {once:.3f} s ({once / len(pairs) * 1e3:.2f} ms/pair)   "
          f"parse every pair: {every:.3f} s ({every / len(pairs) * 1e3:.2f} ms/pair)")
    print(f"speed-up: {every / once:.1f}x; judgements identical: {same}")
    assert same, "the two ways of scoring disagree"


if __name__ == "__main__":
    main()
