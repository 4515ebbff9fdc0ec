"""ShapesWorld's pixel oracle as a training reward source (`reward.source=oracle`): an upper bound, never SRUM.

It answers the same questions the self-judge does, in the judge's own [-1, 1] scale, so the map and the training
path are the ones the self-reward uses: the global score is 2·oracle − 1 (all requirements met → 1, none → −1), and
each proposed region is scored by the parsed object it covers most: +1 if that object is one the prompt asks for
(every stated attribute right), −1 if it is not (a wrong colour, shape, texture or size), 0 when the region covers
no parsed object (background: neutral, as the judge's scale says).
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from srum.rewards.judge import Judgement
from srum.rewards.regions import Region
from srum.rewards.reward_map import support_mask
from srum.worlds.shapes import oracle
from srum.worlds.shapes.grammar import parse_prompt

MIN_COVER = 0.3  # a region speaks for an object when it covers at least this share of the object's pixels


def region_verdict(region: Region, objects: list[oracle.Detected], fits: list[bool], shape: tuple[int, int]) -> float:
    """+1 / −1 for the object the region covers most (by pixels), 0 when it covers none enough."""
    mask = support_mask(region.mask if region.mask is not None else region.box_xyxy, *shape)
    if mask is None:  # an empty box covers nothing
        return 0.0
    support = mask.numpy()
    best, best_cover = None, 0.0
    for k, o in enumerate(objects):
        cover = float((o.mask & support).sum()) / max(int(o.mask.sum()), 1)
        if cover > best_cover:
            best, best_cover = k, cover
    if best is None or best_cover < MIN_COVER:
        return 0.0
    return 1.0 if fits[best] else -1.0


class OracleScorer:
    """Scores images like `SelfJudge.judge`, from the exact oracle instead of the model. `ignore` names attributes
    (of `oracle.ATTRIBUTES`) it does not check (`reward.oracle_ignore`): a reward for what the model can control."""

    def __init__(self, ignore: Sequence[str] = ()) -> None:
        unknown = sorted(set(ignore) - set(oracle.ATTRIBUTES))
        if unknown:
            raise ValueError(f"reward.oracle_ignore: {unknown} are not attributes the ShapesWorld oracle checks; "
                             f"expected some of {list(oracle.ATTRIBUTES)}")
        self.ignore = frozenset(ignore)

    def judge(self, images: list[Image.Image], prompts: list[str],
              regions_per_image: list[list[Region]]) -> list[Judgement]:
        out = []
        parsed: dict[int, list[oracle.Detected]] = {}  # by image identity: `images` keeps every image alive
        for image, prompt, regions in zip(images, prompts, regions_per_image, strict=True):
            spec = parse_prompt(prompt)
            if id(image) not in parsed:  # an image judged under several prompts (hindsight) is parsed once
                parsed[id(image)] = oracle.parse_image(image)
            explanation = oracle.check(parsed[id(image)], spec, self.ignore)
            fits = [oracle.fits_prompt(o, spec, self.ignore) for o in explanation.objects]
            shape = (image.height, image.width)
            scores: list[float | None] = [region_verdict(r, explanation.objects, fits, shape) for r in regions]
            raw = [f"oracle={explanation.score:.3f}"] + [
                f"{req.kind}:{'ok' if ok else 'fail'}" for req, ok in explanation.results]
            out.append(Judgement(2.0 * explanation.score - 1.0, scores, list(regions), raw))
        return out

