"""`--compare` sets the model's own judge beside the judge's score, on hand-made verdicts."""

from __future__ import annotations

from srum.evaluation.report import compare_scores, write_scores


def _folder(tmp_path, name: str, scores: list[float], p_yes: list[float] | None) -> str:
    recs = [{"category": "color", "index": i, "score": s, "prompt": f"p{i}", "file": f"f{i}"}
            for i, s in enumerate(scores)]
    for r, p in zip(recs, p_yes or []):
        r["self_judge_p_yes"] = p
    write_scores(tmp_path / name, "shapes", "val", "ck", recs)
    return str(tmp_path / name)


def test_own_verdict_is_paired_against_the_first_with_its_auroc(tmp_path):
    # base: the one met image (prompt 0) gets the highest P(yes), AUROC 1; run: the same pictures, its own verdict
    # 0.2 higher on every prompt; flipped: ranked backwards (the met image lowest), AUROC 0
    base = _folder(tmp_path, "base", [1.0, 0.5, 0.0, 0.0], [0.6, 0.3, 0.2, 0.1])
    run = _folder(tmp_path, "run", [1.0, 0.5, 0.0, 0.0], [0.8, 0.5, 0.4, 0.3])
    flipped = _folder(tmp_path, "flipped", [1.0, 0.5, 0.0, 0.0], [0.1, 0.2, 0.3, 0.6])
    lines = compare_scores([base, run, flipped]).splitlines()
    assert "- base: 0.3000, AUROC 1.000 over 4 images" in lines
    assert "- run: 0.5000 (+0.2000 [+0.2000, +0.2000] over 4 prompts), AUROC 1.000 over 4 images" in lines
    assert any(line.startswith("- flipped: 0.3000 (+0.0000 [") and line.endswith("AUROC 0.000 over 4 images")
               for line in lines)
    # pooled seeds are one entry; an evaluation without --self-judge is left out, and with none there is no section
    plain = _folder(tmp_path, "plain", [1.0, 0.5, 0.0, 0.0], None)
    own = compare_scores([base + "+" + base, plain, run]).split("own judge")[1]
    assert "- base+base: 0.3000, AUROC 1.000 over 8 images" in own and "- plain" not in own
    assert "own judge" not in compare_scores([plain, plain])
    # a first evaluation without it leaves nothing to pair against
    assert "- run: 0.5000, AUROC 1.000 over 4 images" in compare_scores([plain, run])
