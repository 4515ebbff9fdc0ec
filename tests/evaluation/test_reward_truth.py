"""Reward against truth: AUROC, Spearman and the reward-hacking warning on hand-made numbers."""

import pytest

from srum.evaluation.reward_truth import hacking_warning, reward_truth


def test_reward_truth_hand_values():
    # Perfect images (truth 1) get rewards 0.9 and 0.4; the others 0.5, 0.1, 0.2.
    # AUROC = P(reward of a perfect > reward of an imperfect) = (3 + 2) / 6: 0.9 beats all 3, 0.4 beats 0.1 and 0.2.
    out = reward_truth([0.9, 0.4, 0.5, 0.1, 0.2], [1.0, 1.0, 0.5, 0.0, 0.25])
    assert out["images"] == 5 and out["perfect"] == 2
    assert out["auroc"] == pytest.approx(5 / 6)
    assert out["reward_mean"] == pytest.approx(0.42) and out["truth_mean"] == pytest.approx(0.55)
    # ranks: reward (5, 3, 4, 1, 2), truth (4.5, 4.5, 3, 1, 2); centred (2, 0, 1, −2, −1) and (1.5, 1.5, 0, −2, −1):
    # Pearson of the ranks = 8 / sqrt(10 · 9.5)
    assert out["spearman"] == pytest.approx(8 / 95 ** 0.5, abs=1e-6)


def test_reward_truth_skips_missing_and_undefined():
    out = reward_truth([None, 0.3, 0.5], [1.0, 0.5, 0.5])
    assert out["images"] == 2 and out["auroc"] is None and out["spearman"] is None  # no positive; constant truth


def test_hacking_warning():
    assert hacking_warning([{"reward_mean": 0.2, "truth_mean": 0.3}]) is None
    rising_both = [{"reward_mean": 0.2, "truth_mean": 0.3}, {"reward_mean": 0.4, "truth_mean": 0.4}]
    assert hacking_warning(rising_both) is None
    hacked = [{"reward_mean": 0.2, "truth_mean": 0.3}, {"reward_mean": 0.3, "truth_mean": 0.29},
              {"reward_mean": 0.5, "truth_mean": 0.3}]
    assert "reward hacking" in hacking_warning(hacked)


def test_an_exact_reward_is_never_called_hacked(tmp_path):
    """Rounds whose kept images are all perfect (the oracle with reward.min_global=1) while their reward rises: a
    judge-made reward would warn, the world's exact judge cannot be hacked."""
    from srum.pipeline import _round_truth
    from srum.records import JudgeRow
    from srum.utils.io import atomic_write_json

    atomic_write_json(tmp_path / "round1" / "score" / "manifest.json",
                      {"reward_truth": {"reward_mean": 0.60, "truth_mean": 1.0}})
    rows = [JudgeRow(j, "p", "f", True, 1.0, [], [], [], 0, reward=0.7, truth=1.0) for j in range(3)]
    rows.append(JudgeRow(3, "p", "f", False, -1.0, [], [], [], 0, reward=None, truth=0.0))
    judged = _round_truth(rows, tmp_path, 2, None)
    assert judged["truth_mean"] == 1.0 and judged["truth_mean_all"] == pytest.approx(0.75)
    assert "reward hacking" in judged["hacking_warning"]
    assert _round_truth(rows, tmp_path, 2, None, exact=True)["hacking_warning"] is None
