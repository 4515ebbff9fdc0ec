"""The shipped ShapesWorld checkpoint: it loads, draws images of the right size, and understands renders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srum.models.bagel.unified import BagelUnified
from srum.worlds.shapes.grammar import Group, PromptSpec, to_text
from srum.worlds.shapes.layout import sample_scene
from srum.worlds.shapes.render import render
from srum.worlds.shapes.tasks import NO, YES, global_question

CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "shapes-tiny"


@pytest.fixture(scope="module")
def model() -> BagelUnified:
    return BagelUnified.from_pretrained(CHECKPOINT)


def test_generates_64px_images_deterministically(model):
    a = model.sample_images(["a red circle", "two blue squares"], seeds=[0, 1], height=64, width=64)
    b = model.sample_images(["a red circle"], seeds=[0], height=64, width=64)
    assert [im.size for im in a.images] == [(64, 64), (64, 64)]
    assert np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))


def test_answers_questions_about_renders(model):
    """Single big objects: the true description gets "yes", a swapped colour or shape gets "no"."""
    rng = np.random.default_rng(0)
    right = wrong = 0
    cases = [("green", "square", "orange", "triangle"), ("purple", "circle", "yellow", "square"),
             ("orange", "triangle", "blue", "circle"), ("yellow", "circle", "red", "square")]
    for color, shape, other_color, other_shape in cases:
        image = render(sample_scene(PromptSpec((Group(shape, color),)), rng), 64, rng)
        questions = [to_text(PromptSpec((Group(s, c),))) for s, c in
                     ((shape, color), (shape, other_color), (other_shape, color))]
        probs = model.answer_distribution([image] * 3, [global_question(q) for q in questions], [YES, NO])
        answers = [YES if p[0] > p[1] else NO for p in probs.tolist()]
        right += answers == [YES, NO, NO]
        wrong += answers != [YES, NO, NO]
    assert right >= 3, f"{right} of {len(cases)} scenes answered fully right"
