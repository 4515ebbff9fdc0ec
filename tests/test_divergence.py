"""Divergence guard (srum/divergence.py): which steps are bad, when it stops, which checkpoint is still good."""

import math

import pytest

from srum.divergence import DivergenceGuard, TrainingDiverged, good_checkpoint, likely_cause


def test_non_finite_norms_are_bad_and_the_third_stops():
    guard = DivergenceGuard(max_bad_steps=3, explode_factor=100.0)
    assert [guard.check(s, g) for s, g in enumerate([1.0, 1.2, math.inf, 0.9, math.nan])] == [
        False, False, True, False, True]
    assert guard.first_bad_step == 2
    with pytest.raises(TrainingDiverged, match=r"3 bad steps \(grad norm step 2: inf, step 4: nan, step 5: inf"):
        guard.check(5, math.inf)


def test_explosion_is_relative_to_the_median_of_recent_good_steps():
    guard = DivergenceGuard(max_bad_steps=5, explode_factor=10.0)
    assert not guard.check(0, 50.0)  # one good step is no history: never called exploding
    assert not guard.check(1, 2.0)
    assert not guard.check(2, 2.0)  # median(50, 2) = 26
    # median of (50, 2, 2) = 2: 20.1 > 10 × 2 is bad, 19.9 is not
    assert guard.check(3, 20.1)
    assert not guard.check(4, 19.9)


def test_good_checkpoint_predates_the_update_before_the_first_bad_step(tmp_path):
    for s in (2, 4, 6):
        (tmp_path / f"step{s:07d}").mkdir()
    (tmp_path / "step_junk").mkdir()
    assert good_checkpoint(tmp_path, 5) == "step0000004"  # weights after steps 0-3; step 4's update excluded
    assert good_checkpoint(tmp_path, 4) == "step0000002"  # step0000004 holds step 3's update, which step 4 saw
    assert good_checkpoint(tmp_path, 2) is None


def test_likely_cause_names_broken_inputs_before_the_learning_rate():
    assert "reward" in likely_cause(weights_finite=False, inputs_finite=True, lr=1e-4)
    assert "latents" in likely_cause(weights_finite=True, inputs_finite=False, lr=1e-4)
    assert "train.lr=1e+06" in likely_cause(weights_finite=True, inputs_finite=True, lr=1e6)
