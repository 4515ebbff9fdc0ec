"""T2I-CompBench sample layout, vqa_result.json import, SRUM composite and the Markdown tables, on hand-made data."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from srum.evaluation.evaluate import compbench_sample_name, import_compbench_results, write_compbench_samples
from srum.evaluation.report import PAPER_ORDER, compare_scores, composite_scores, markdown_table, write_scores


def _records(tmp_path):
    recs = []
    for cat, prompts in (("color", ["a red cube", "a blue_ball"]), ("spatial", ["a cat next to a dog"])):
        for i, p in enumerate(prompts):
            for k in range(2):
                rel = f"images/{cat}/{i:05d}_{k}.png"
                (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), (i * 50, k * 50, 0)).save(tmp_path / rel)
                recs.append({"category": cat, "index": i, "k": k, "prompt": p, "score": 0.5, "file": rel})
    return recs


def test_sample_layout_and_import_round_trip(tmp_path):
    recs = write_compbench_samples(tmp_path, _records(tmp_path))
    names = sorted(p.name for p in (tmp_path / "color" / "samples").iterdir())
    assert names == ["a blue ball_000002.png", "a blue ball_000003.png", "a red cube_000000.png",
                     "a red cube_000001.png"]
    assert [r["question_id"] for r in recs] == [0, 1, 2, 3, 0, 1]
    # T2I-CompBench's scripts: prompt = name before "_", sorted by the index
    files = sorted((tmp_path / "color" / "samples").iterdir(), key=lambda p: int(p.stem.split("_")[-1]))
    assert [p.name.split("_")[0] for p in files] == ["a red cube"] * 2 + ["a blue ball"] * 2
    assert compbench_sample_name("x", 12) == "x_000012.png"
    # their output: BLIP-VQA writes answers as strings, UniDet as numbers; per-np runs under VQA/ are ignored
    blip = tmp_path / "color" / "annotation_blip" / "vqa_result.json"
    blip.parent.mkdir(parents=True)
    blip.write_text(json.dumps([{"question_id": q, "answer": f"{q / 10:.4f}"} for q in range(4)]))
    stale = tmp_path / "color" / "annotation1_blip" / "VQA" / "result" / "vqa_result.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("[]")
    det = tmp_path / "spatial" / "labels" / "annotation_obj_detection_2d" / "vqa_result.json"
    det.parent.mkdir(parents=True)
    det.write_text(json.dumps([{"question_id": 0, "answer": 1.0}, {"question_id": 1, "answer": 0.25}]))
    assert import_compbench_results(recs, tmp_path) == 6
    assert [r["score"] for r in recs] == [0.0, 0.1, 0.2, 0.3, 1.0, 0.25]
    assert all(r["score_before_import"] == 0.5 for r in recs)
    # a single file: its category comes from the path
    det.write_text(json.dumps([{"question_id": 1, "answer": 0.75}]))
    assert import_compbench_results(recs, det) == 1 and recs[-1]["score"] == 0.75
    det.write_text(json.dumps([{"question_id": 9, "answer": 0.75}]))
    with pytest.raises(ValueError, match="question_id 9"):
        import_compbench_results(recs, det)


def test_composite_and_overall_by_hand():
    cats = {"color": 0.9, "complex": 0.6, "complex_action": 0.3, "complex_spatial": 0.9, "spatial": 0.5}
    table, overall = composite_scores(cats)
    assert table == {"color": 0.9, "complex": pytest.approx(0.6), "spatial": 0.5}
    assert overall == pytest.approx((0.9 + 0.6 + 0.5) / 3)


def test_write_scores_excludes_none_and_orders_table(tmp_path):
    recs = [{"category": c, "score": s, "prompt": "p", "file": "f"} for c, s in
            (("color", 1.0), ("color", None), ("texture", 0.5), ("3d_spatial", 0.25), ("complex", 0.0))]
    recs[1]["parse_failed"] = True
    summary = write_scores(tmp_path, "t2i-compbench", "val", "ck", recs)
    assert summary["categories"]["color"] == 1.0 and summary["n_excluded"] == 1 and summary["parse_failures"] == 1
    assert summary["overall"] == pytest.approx((1.0 + 0.5 + 0.25 + 0.0) / 4)
    header = (tmp_path / "scores.md").read_text().splitlines()[0]
    assert header == "| run | 3d spatial | color | complex | texture | overall |"
    assert PAPER_ORDER == ("3d_spatial", "color", "complex", "non_spatial", "numeracy", "shape", "spatial", "texture")


def test_markdown_table_and_compare(tmp_path):
    full = {c: 0.1 * (i + 1) for i, c in enumerate(reversed(PAPER_ORDER))}
    a = {"table": full, "overall": 0.5}
    b = {"table": {**full, "color": full["color"] + 0.05}, "overall": 0.52}
    text = markdown_table([("base", a), ("srum", b)])
    lines = text.splitlines()
    assert lines[0] == ("| run | 3d spatial | color | complex | non spatial | numeracy | shape | spatial | texture | "
                        "overall |")
    assert lines[2].startswith("| base | 80.00 | 70.00 |")
    assert "| srum | 80.00 (+0.00) | 75.00 (+5.00) |" in lines[3] and lines[3].endswith("52.00 (+2.00) |")
    for name, s in (("base", a), ("srum", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "scores.json").write_text(json.dumps({"categories": s["table"], **s}))
    out = tmp_path / "table.md"
    assert compare_scores([tmp_path / "base", tmp_path / "srum" / "scores.json"], out) == text
    assert out.read_text() == text
    with pytest.raises(FileNotFoundError, match="--compare"):
        compare_scores([tmp_path / "nowhere"])


def test_compare_splits_the_paired_deltas_by_window_of_prompt_index(tmp_path):
    # 4 prompts per category: window 0 (indices 0-1) gained +0.5 each, window 1 (indices 2-3) lost 0.25 each
    def folder(name, scores):
        recs = [{"category": "color", "index": i, "score": s, "prompt": f"p{i}", "file": f"f{i}"}
                for i, s in enumerate(scores)]
        write_scores(tmp_path / name, "shapes", "train", "ck", recs)
        (tmp_path / name / "images.json").write_text(json.dumps(recs))
        return tmp_path / name

    text = compare_scores([folder("base", [0.0, 0.5, 0.5, 1.0]), folder("run", [0.5, 1.0, 0.25, 0.75])], windows=2)
    assert "- run: +0.1250 " in text
    assert "  - window 0 (prompt indices 0–1): +0.5000 [+0.5000, +0.5000] over 2 prompts" in text
    assert "  - window 1 (prompt indices 2–3): -0.2500 [-0.2500, -0.2500] over 2 prompts" in text


def test_compare_pools_the_images_of_plus_joined_evaluations(tmp_path):
    def folder(name, scores, images=True):
        recs = [{"category": "color", "index": i, "score": s, "prompt": f"p{i}", "file": f"f{i}"}
                for i, s in enumerate(scores)]
        write_scores(tmp_path / name, "shapes", "train", "ck", recs)  # writes images.json too
        if not images:
            (tmp_path / name / "images.json").unlink()
        return str(tmp_path / name)

    # two evaluation seeds of the base pool to 0.5 on every prompt; the run's pool to 0.5, 1, 0.25, 0.75
    base = folder("b0", [0.0, 0.5, 0.5, 1.0]) + "+" + folder("b1", [1.0, 0.5, 0.5, 0.0])
    run = folder("r0", [0.5, 1.0, 0.0, 1.0]) + "+" + folder("r1", [0.5, 1.0, 0.5, 0.5])
    text = compare_scores([base, run], windows=2)
    assert "| b0+b1 |" in text and "| r0+r1 |" in text
    assert "- r0+r1: +0.1250 " in text  # per-prompt deltas 0, +0.5, −0.25, +0.25
    assert "  - window 0 (prompt indices 0–1): +0.2500 [+0.0000, +0.5000] over 2 prompts" in text
    assert "  - window 1 (prompt indices 2–3): +0.0000 [-0.2500, +0.2500] over 2 prompts" in text
    with pytest.raises(FileNotFoundError, match="pooling needs every part's images.json"):
        compare_scores([base, folder("r0", [0.5]) + "+" + folder("r2", [0.5], images=False)])


def test_compare_reports_understanding_against_the_first_and_pools_it_by_questions(tmp_path):
    def folder(name, accuracy=None, questions=100):
        recs = [{"category": "color", "index": 0, "score": 0.5, "prompt": "p0", "file": "f0"}]
        extra = {"understanding": {"balanced_accuracy": accuracy, "n_questions": questions}} if accuracy else None
        write_scores(tmp_path / name, "shapes", "train", "ck", recs, extra)
        return str(tmp_path / name)

    text = compare_scores([folder("base", 0.85), folder("run", 0.8), folder("plain")])
    assert "- base: 0.850 over 100 questions" in text
    assert "- run: 0.800 (-5.0 points) over 100 questions" in text
    section = text.split("Understanding")[1].split("Paired bootstrap")[0]
    assert "plain" not in section  # not measured: left out, not shown as zero
    # pooled: (0.85·100 + 0.91·300) / 400 = 0.895 over 400 questions; the first, pooled, is the reference
    text = compare_scores([folder("b0", 0.85) + "+" + folder("b1", 0.91, 300), folder("r", 0.88, 400)])
    assert "- b0+b1: 0.895 over 400 questions" in text
    assert "- r: 0.880 (-1.5 points) over 400 questions" in text
    assert "Understanding" not in compare_scores([folder("plain"), folder("plain2")])
