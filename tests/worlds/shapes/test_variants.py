"""The prompts hindsight relabelling chooses from: every prompt that differs only in the named attributes, each
meaning once, counted by hand."""

import pytest

from srum.worlds.shapes import world
from srum.worlds.shapes.grammar import parse_prompt, to_text, variants


def _texts(prompt: str, kinds: list[str]) -> list[str]:
    return [to_text(v) for v in variants(parse_prompt(prompt), kinds)]


def test_shapes_of_two_coloured_groups_give_all_nine_the_prompt_first():
    out = _texts("a red circle and a blue square", ["shape"])
    assert out[0] == "a red circle and a blue square" and len(out) == 9 == len(set(out))
    assert "a red square and a blue circle" in out and "a red triangle and a blue triangle" in out


def test_groups_told_apart_only_by_shape_keep_distinct_shapes_and_one_order():
    # circle-circle would match one object twice; "a square and a circle" means "a circle and a square"
    assert sorted(_texts("a circle and a square", ["shape"])) == sorted(
        ["a circle and a square", "a circle and a triangle", "a square and a triangle"])


def test_relations_stay_in_their_family_and_mirror_images_count_once():
    assert _texts("a circle on the left of a square", ["relation"]) == [
        "a circle on the left of a square", "a circle on the right of a square", "a circle above a square",
        "a circle below a square"]
    assert len(_texts("a circle in front of a square", ["relation"])) == 2
    # 6 ordered pairs of distinct shapes × 4 relations, each meaning twice ("A left of B" = "B right of A")
    assert len(_texts("a circle on the left of a square", ["shape", "relation"])) == 12


def test_counts_keep_at_most_four_objects_and_unstated_attributes_stay_unstated():
    out = _texts("two green triangles and one circle", ["count"])
    assert len(out) == 6  # (1,1) (1,2) (1,3) (2,1) (2,2) (3,1)
    assert "four green triangles and one circle" not in out
    assert _texts("a circle and a square", ["color"]) == ["a circle and a square"]


def test_the_world_hook_keeps_the_asked_text_first_and_refuses_unknown_kinds():
    assert world.prompt_variants("A red circle and a blue square.", ["shape"])[0] == "A red circle and a blue square."
    with pytest.raises(ValueError, match=r"\['mood'\] are not attributes a ShapesWorld prompt states"):
        world.prompt_variants("a red circle", ["mood"])


def test_attribute_values_are_what_the_prompt_states_group_by_group_then_the_relation():
    assert world.attribute_values("two red circles and a blue square", ["shape", "count", "color"]) == [
        "shape=circle", "count=2", "color=red", "shape=square", "color=blue"]  # "a" states no count
    assert world.attribute_values("a circle on the left of a square", ["shape", "relation", "texture"]) == [
        "shape=circle", "shape=square", "relation=left"]
    with pytest.raises(ValueError, match=r"\['colour'\] are not attributes"):
        world.attribute_values("a red circle", ["colour"])
