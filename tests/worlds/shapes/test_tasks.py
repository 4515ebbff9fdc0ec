"""Pretraining/judging templates: every text is in the tokenizer's vocabulary, held-out pairs never appear."""

from __future__ import annotations

from srum.worlds.shapes.grammar import parse_prompt
from srum.worlds.shapes.model import shapes_bagel_config, shapes_tokenizer
from srum.worlds.shapes.splits import HELD_OUT, has_held_out
from srum.worlds.shapes.tasks import NO, YES, ShapesTasks, describe, object_phrase


def test_texts_tokenize_without_unknowns_and_avoid_held_out():
    cfg = shapes_bagel_config()
    tok = shapes_tokenizer(cfg)
    unk = tok.convert_tokens_to_ids("<unk>")
    tasks = ShapesTasks(seed=3)
    answers = []
    for _ in range(150):
        qa = tasks.qa(0.3)
        t2i = tasks.text_to_image(0.3)
        for text in (qa.question, qa.answer, t2i.prompt):
            assert unk not in tok.encode(text, add_special_tokens=False), text
        assert not has_held_out(parse_prompt(t2i.prompt), HELD_OUT)
        if qa.answer in (YES, NO):
            answers.append(qa.answer)
            asked = qa.question.removeprefix("does this image show ").removeprefix("does this region show ")
            assert not has_held_out(parse_prompt(asked.rstrip("?")), HELD_OUT), qa.question
        else:  # descriptions and region names: each object phrase is free of held-out pairs
            for phrase in qa.answer.replace(", ", " and ").split(" and "):
                assert not has_held_out(parse_prompt(phrase), HELD_OUT)
    assert 0.35 < answers.count(YES) / len(answers) < 0.65  # yes/no roughly balanced


def test_describe_orders_left_to_right():
    from srum.worlds.shapes.scene import Obj, Scene

    scene = Scene((Obj("square", "green", size=0.25, x=0.7), Obj("circle", "red", "striped", size=0.45, x=0.3)))
    assert describe(scene) == "a big red striped circle and a small green solid square"
    assert object_phrase(scene.objects[0]) == "a small green solid square"


def test_match_pair_asks_the_true_prompt_and_a_negative_about_one_render():
    tasks = ShapesTasks(seed=5)
    for _ in range(20):
        yes, no = tasks.match_pair()
        assert yes.image is no.image and (yes.answer, no.answer) == (YES, NO)
        assert yes.question != no.question and yes.kind.startswith("match:") and no.kind.startswith("mismatch:")
