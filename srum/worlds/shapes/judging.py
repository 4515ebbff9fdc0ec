"""ShapesWorld's side of the self-judge: which object phrases a region is checked against.

The tiny model was taught "does this region show {object}?" with single-object phrases (`tasks.region_question`),
so a region is asked about each object the prompt names and scored as the best match (srum.rewards.judge).
Sizes are left out of region phrases: a crop is resized for the ViT, so it cannot show how big the object is.
"""

from __future__ import annotations

from dataclasses import replace

from srum.worlds.shapes.grammar import PromptSpec, parse_prompt, to_text


def object_phrases(prompt: str) -> list[str]:
    """The prompt's object phrases, one per group, without counts or sizes: "two big red circles and a square" →
    ["a red circle", "a square"] (a region holds one object, so a counted group is asked about singly).

    Raises:
        ValueError: the prompt is outside the ShapesWorld grammar (from `parse_prompt`).
    """
    groups = [replace(g, count=None, size=None) for g in parse_prompt(prompt).groups]
    return list(dict.fromkeys(to_text(PromptSpec((g,))) for g in groups))
