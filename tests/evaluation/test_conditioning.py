"""srum.evaluation.conditioning: the wrong variant is one the image does not meet, and the gap is the extra flow
error a wrong prompt costs (hand-computed on a model that knows the exact velocity)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srum.evaluation.conditioning import attribute_gaps, wrong_variants

ROOT = Path(__file__).resolve().parents[2]


def test_wrong_variants_skip_the_ones_the_image_meets():
    variants = {"a red circle": ["a red circle", "a blue circle", "a green circle"],
                "a red square and a red circle": ["a red square and a red circle", "a red circle and a red square"]}
    met = {("img0", "a blue circle"): 1.0, ("img0", "a green circle"): 0.0,
           ("img1", "a red circle and a red square"): 1.0}

    def truth(images, prompts):
        return [met[(i, p)] for i, p in zip(images, prompts)]

    wrong = wrong_variants(list(variants), ["img0", "img1"], ["color"], lambda p, kinds: variants[p], truth)
    assert wrong == {"color": ["a green circle", None]}


class ExactModel:
    """Knows each image's clean tokens (by the prompts it is scored under, `image_of`), so its velocity under the
    own prompt is the exact target; a wrong prompt adds `offset[prompt]` to every channel, costing exactly offset²
    of squared error."""

    def __init__(self, x0: torch.Tensor, image_of: dict[str, int], offset: dict[str, float]):
        self.x0, self.image_of, self.offset = x0, image_of, offset

    def velocity(self, prompts, x_t, t, grid):
        idx = [self.image_of[p] for p in prompts]
        exact = (x_t - (1 - t[:, None, None]) * self.x0[idx]) / t[:, None, None] - self.x0[idx]
        return exact + torch.tensor([self.offset.get(p, 0.0) for p in prompts])[:, None, None]


def test_gap_is_the_squared_offset_and_images_without_a_variant_are_left_out():
    own = ["a red circle", "a blue square", "a green triangle"]
    x0 = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(0))
    wrong = {"color": ["a blue circle", "a red square", None]}
    image_of = {"a red circle": 0, "a blue circle": 0, "a blue square": 1, "a red square": 1, "a green triangle": 2}
    model = ExactModel(x0, image_of, {"a blue circle": 0.5, "a red square": 0.0})
    (gap,) = attribute_gaps(model, x0, own, wrong, (2, 2), repeats=3, batch_size=2)
    # image 0: 0.25 extra error, image 1: none, image 2: no variant
    assert gap.n == 2 and gap.gap == pytest.approx(0.125, abs=1e-5)
    assert gap.label_better == 0.5 and gap.stderr == pytest.approx(0.125, abs=1e-5)  # std 0.1768 / √2


def test_cli_prints_a_row_per_checkpoint():
    out = subprocess.run([sys.executable, "launch/conditioning.py", "checkpoints/shapes-tiny",
                          "checkpoints/shapes-tiny", "--benchmark", "shapes", "--limit", "1", "--kinds", "color",
                          "--repeats", "1"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("| checkpoints/shapes-tiny | rendered")]
    assert len(rows) == 2 and "(+0.0000)" in rows[1]  # the same model, the same draws: a paired difference of 0
    bad = subprocess.run([sys.executable, "launch/conditioning.py", "checkpoints/shapes-tiny", "--benchmark", "shapes",
                          "--kinds", "colour"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "--kinds" in bad.stderr


def test_cli_from_eval_scores_the_met_images_beside_renders_of_their_prompts(tmp_path):
    from srum.worlds.shapes import world

    prompt = world.prompts("val", 1)[0].prompt
    (tmp_path / "images").mkdir()
    world.render_truth([prompt], [0], world.IMAGE_SIZE)[0].save(tmp_path / "images" / "a.png")
    (tmp_path / "images.json").write_text(json.dumps([
        {"prompt": prompt, "score": 1.0, "file": "images/a.png"},
        {"prompt": prompt, "score": 0.5, "file": "images/missing.png"}]))  # not met: never read
    out = subprocess.run([sys.executable, "launch/conditioning.py", "checkpoints/shapes-tiny", "--benchmark", "shapes",
                          "--from-eval", str(tmp_path), "--kinds", "color", "--repeats", "1"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    rows = {line.split(" | ")[1]: line.split(" | ", 2)[2] for line in out.splitlines()
            if line.startswith("| checkpoints/shapes-tiny")}
    assert set(rows) == {"drawn", "rendered"}
    assert rows["drawn"] == rows["rendered"]  # the drawn image is the render of seed 0: the same numbers
    empty = tmp_path / "none"
    empty.mkdir()
    bad = subprocess.run([sys.executable, "launch/conditioning.py", "checkpoints/shapes-tiny", "--benchmark", "shapes",
                          "--from-eval", str(empty)], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "has no images.json" in bad.stderr
