"""Online rounds: each round's prompt window, from the pipeline's pure helper."""

from srum.evaluation.benchmarks import PromptItem
from srum.pipeline import round_items

ITEMS = [PromptItem(c, i, f"{c}{i}") for c in ("a", "b") for i in range(5)]


def test_round_one_keeps_the_first_prompts_and_later_rounds_move_on_wrapping():
    assert [it.prompt for it in round_items(ITEMS, 2, 1)] == ["a0", "a1", "b0", "b1"]
    assert [it.prompt for it in round_items(ITEMS, 2, 2)] == ["a2", "a3", "b2", "b3"]
    assert [it.prompt for it in round_items(ITEMS, 2, 3)] == ["a4", "a0", "b4", "b0"]  # wraps within its category


def test_no_limit_means_every_prompt_every_round_and_limits_cap_at_the_category():
    assert round_items(ITEMS, None, 3) == ITEMS
    assert [it.prompt for it in round_items(ITEMS, 9, 2)] == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
