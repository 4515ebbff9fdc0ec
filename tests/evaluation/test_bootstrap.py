"""Paired bootstrap over prompts on hand-made records."""

import pytest

from srum.evaluation.bootstrap import paired_bootstrap, per_prompt


def _records(scores: dict[tuple[str, int], list[float]]) -> list[dict]:
    return [{"category": c, "index": i, "score": s} for (c, i), ss in scores.items() for s in ss]


def test_per_prompt_means_skip_unscored():
    recs = _records({("a", 0): [1.0, 0.0], ("a", 1): [0.5]}) + [{"category": "a", "index": 1, "score": None}]
    assert per_prompt(recs) == {("a", 0): 0.5, ("a", 1): 0.5}


def test_a_constant_gain_has_a_zero_width_interval():
    base = _records({("a", i): [0.2] for i in range(10)})
    better = _records({("a", i): [0.3] for i in range(10)})
    out = paired_bootstrap(base, better)
    assert out["delta"] == pytest.approx(0.1) and out["lo"] == pytest.approx(0.1) and out["hi"] == pytest.approx(0.1)
    assert out["p_not_better"] == 0.0 and out["prompts"] == 10


def test_mixed_differences_straddle_zero():
    base = _records({("a", i): [0.5] for i in range(20)})
    other = _records({("a", i): [0.6 if i % 2 else 0.4] for i in range(20)})  # +0.1 on half, −0.1 on half
    out = paired_bootstrap(base, other)
    assert out["delta"] == pytest.approx(0.0) and out["lo"] < 0 < out["hi"] and 0.3 < out["p_not_better"] < 0.8
    with pytest.raises(ValueError, match="share no prompt"):
        paired_bootstrap(base, _records({("b", 0): [1.0]}))
