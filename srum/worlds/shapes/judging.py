"""ShapesWorld's side of the self-judge: which object phrases a region is checked against.

The tiny model was taught "does this region show {object}?" with single-object phrases (`tasks.region_question`),
so a region is asked about each object the prompt names and scored as the best match (srum.rewards.judge).
"""

from __future__ import annotations

from srum.worlds.shapes.grammar import parse_prompt, requirements


def object_phrases(prompt: str) -> list[str]:
    """The prompt's object phrases, one per group, without counts: "two red circles and a square" →
    ["a red circle", "a square"] (a region holds one object, so a counted group is asked about singly).

    Raises:
        ValueError: the prompt is outside the ShapesWorld grammar (from `parse_prompt`).
    """
    return [r.text for r in requirements(parse_prompt(prompt)) if r.kind == "object"]
