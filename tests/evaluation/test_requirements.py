"""The share of each kind of requirement met, paired against the first evaluation, on hand-made verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from srum.evaluation.report import compare_scores, write_scores
from srum.evaluation.requirements import kind_tag, requirement_table, tagged_records
from srum.worlds.shapes.world import requirement_tag


def _rec(index: int, verdicts: list[tuple[str, bool]], category: str = "color") -> dict:
    met = [ok for _, ok in verdicts]
    return {"category": category, "index": index, "score": sum(met) / len(met), "prompt": f"p{index}",
            "file": f"f{index}", "requirements": [[text, ok] for text, ok in verdicts]}


def test_tagged_records_average_an_images_requirements_of_one_tag():
    # two circles asked, one drawn: the image meets half of its circle requirements and its one square
    rec = _rec(3, [("object: a red circle", True), ("object: a blue circle", False), ("object: a square", True),
                   ("relation: a red circle on the left of a square", False)])
    tagged = tagged_records([rec], requirement_tag)
    assert {t: [r["score"] for r in rs] for t, rs in tagged.items()} == {
        "object: circle": [0.5], "object: square": [1.0], "relation: spatial": [0.0]}
    assert tagged["object: circle"][0]["category"] == "color" and tagged["object: circle"][0]["index"] == 3
    assert set(tagged_records([rec], kind_tag)) == {"object", "relation"}


def test_shapes_tags_name_the_shape_and_the_relation_family():
    assert requirement_tag("object: a big striped yellow triangle") == "object: triangle"
    assert requirement_tag("count: exactly two orange circles") == "count"
    assert requirement_tag("relation: a red circle behind a green circle") == "relation: depth"
    assert requirement_tag("relation: a yellow circle inside a blue triangle") == "relation: containment"
    assert requirement_tag("relation: a square on the right of a triangle") == "relation: spatial"


def test_requirement_table_pairs_each_tag_over_prompts():
    # base: circles met on prompt 0 only, squares on both; run: circles on both, squares on prompt 1 only
    base = [_rec(0, [("object: a circle", True), ("object: a square", True)]),
            _rec(1, [("object: a circle", False), ("object: a square", True)])]
    run = [_rec(0, [("object: a circle", True), ("object: a square", False)]),
           _rec(1, [("object: a circle", True), ("object: a square", True)])]
    lines = requirement_table([("base", base), ("run", run)], requirement_tag).splitlines()
    assert lines[0] == "| requirement | images | base | run |"
    assert lines[2] == "| object: circle | 2 | 50.0 | 100.0 (+50.0 [+0.0, +100.0]) |"
    assert lines[3] == "| object: square | 2 | 100.0 | 50.0 (-50.0 [-100.0, +0.0]) |"
    with pytest.raises(ValueError, match="--requirements: plain has no per-requirement verdicts"):
        requirement_table([("base", base), ("plain", [{"category": "color", "index": 0, "score": 1.0}])])


def test_compare_adds_the_requirement_table_with_the_worlds_tags(tmp_path):
    def folder(name, recs, images=True):
        write_scores(tmp_path / name, "shapes", "train", "ck", recs)
        if not images:
            (tmp_path / name / "images.json").unlink()
        return str(tmp_path / name)

    base = folder("b", [_rec(0, [("object: a red circle", False), ("count: exactly one red circle", False)])])
    run = folder("r", [_rec(0, [("object: a red circle", True), ("count: exactly one red circle", True)])])
    text = compare_scores([base, run], requirements=True)
    assert "| object: circle | 1 | 0.0 | 100.0 (+100.0 [+100.0, +100.0]) |" in text
    assert "| count | 1 | 0.0 | 100.0 (+100.0 [+100.0, +100.0]) |" in text
    pooled = compare_scores([base + "+" + base, run], requirements=True)  # a pooled entry keeps its world's tags
    assert "| object: circle | 2 | 0.0 | 100.0 (+100.0 [+100.0, +100.0]) |" in pooled
    assert "Requirements met" not in compare_scores([base, run])
    with pytest.raises(FileNotFoundError, match="--requirements: r2 has no images.json"):
        compare_scores([base, folder("r2", [_rec(0, [("object: a circle", True)])], images=False)],
                       requirements=True)
    assert json.loads((tmp_path / "b" / "images.json").read_text())[0]["requirements"][0] == [
        "object: a red circle", False]


def test_the_cli_refuses_requirements_without_compare_and_names_a_folder_without_verdicts(tmp_path):
    script = str(Path(__file__).resolve().parents[2] / "launch" / "evaluate.py")
    run = subprocess.run([sys.executable, script, "--requirements"], capture_output=True, text=True)
    assert run.returncode != 0 and run.stderr.strip().splitlines() == [
        "evaluate.py: --requirements needs --compare (one or more evaluation folders)"]
    write_scores(tmp_path / "plain", "t2i-compbench", "val", "ck",
                 [{"category": "color", "index": 0, "score": 0.5, "prompt": "p", "file": "f"}])
    run = subprocess.run([sys.executable, script, "--compare", str(tmp_path / "plain"), "--requirements"],
                         capture_output=True, text=True)
    assert run.returncode != 0 and run.stderr.strip().splitlines() == [
        "evaluate.py: --requirements: plain has no per-requirement verdicts (its judge records none; a world's "
        "oracle does)"]
