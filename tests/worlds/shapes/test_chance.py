"""Chance levels: renders of other prompts score well below ground truth, yet above zero (partial credit)."""

from __future__ import annotations

from srum.worlds.shapes.chance import chance_scores
from srum.worlds.shapes.grammar import CATEGORIES


def test_prompt_ignoring_renders_score_between_zero_and_ground_truth():
    scores = chance_scores("val", seed=0, limit=10)
    assert set(scores) == set(CATEGORIES)
    for category, value in scores.items():
        assert 0.0 < value < 0.8, f"{category}: chance level {value:.3f}"
    assert chance_scores("val", seed=0, limit=10) == scores  # seeded
