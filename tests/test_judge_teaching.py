"""Teaching the judge (srum/judge_teaching.py, launch/teach_judge.py): the judge-only parameters never touch
generation, the differentiable log-odds equal the answer distribution's, teaching lowers the cross-entropy by hand
and moves nothing else, and the command's output and refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srum.cli.teach_judge import main as teach_main
from srum.config import ModelConfig
from srum.judge_teaching import Verdict, judge_agreement, teach_judge
from srum.models.bagel.sampling import GuidanceParams
from srum.models.bagel.unified import BagelUnified
from srum.models.registry import load_unified_model
from srum.worlds.shapes.tasks import NO, YES, global_question

from .conftest import tiny_shapes_bagel

PROMPTS = ["a red circle", "a square below a triangle"]
ANSWERS = (YES, NO)


@pytest.fixture
def unified() -> BagelUnified:
    m = BagelUnified(*tiny_shapes_bagel())
    m.model.eval(), m.vae.eval()
    m.guidance = GuidanceParams(num_timesteps=4, timestep_shift=2.0, cfg_text_scale=3.0, cfg_interval=(0.0, 1.0))
    return m


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]


def _verdicts(scores: list[float]) -> list[Verdict]:
    return [Verdict(im, global_question(PROMPTS[i % 2]), s) for i, (im, s) in enumerate(zip(_images(len(scores)), scores))]


def _perturb(m: BagelUnified, which) -> None:
    with torch.no_grad():
        for name, p in m.model.named_parameters():
            if which(name):
                p.add_(0.5 * torch.randn_like(p))


def test_judge_only_parameters_change_verdicts_but_not_a_single_velocity(unified):
    """Perturbing every judge-only parameter leaves the guided velocity bit for bit (prompts go through the
    understanding expert, which is not judge-only) and changes the judge's answers; perturbing one understanding
    expert weight instead changes the velocity, so the test can tell."""
    m = unified
    x = torch.randn(2, 4, m.config.latent_channels * m.config.latent_patch_size ** 2)
    t = torch.tensor([0.7, 0.3])
    images, questions = _images(2), [global_question(p) for p in PROMPTS]
    v0 = m.guided_velocity(PROMPTS, x, t, (2, 2))
    p0 = m.answer_distribution(images, questions, list(ANSWERS))
    judge_only = [n for n, _ in m.model.named_parameters() if m.is_judge_only_parameter(n)]
    assert any(n.startswith("vit_model.") for n in judge_only) and "language_model.lm_head.weight" in judge_only
    assert not any(m.is_generation_parameter(n) for n in judge_only)
    _perturb(m, m.is_judge_only_parameter)
    assert torch.equal(m.guided_velocity(PROMPTS, x, t, (2, 2)), v0)
    assert (m.answer_distribution(images, questions, list(ANSWERS)) - p0).abs().max() > 1e-3
    _perturb(m, lambda n: n == "language_model.model.layers.0.self_attn.q_proj.weight")
    assert not torch.equal(m.guided_velocity(PROMPTS, x, t, (2, 2)), v0)


def test_answer_log_odds_equal_the_answer_distributions_and_reach_the_weights(unified):
    m = unified
    images, questions = _images(2), [global_question(p) for p in PROMPTS]
    p = m.answer_distribution(images, questions, list(ANSWERS))
    log_odds = m.answer_log_odds(images, questions, ANSWERS)
    assert torch.allclose(log_odds.detach(), (p[:, 0] / p[:, 1]).log(), atol=1e-5)
    log_odds.sum().backward()
    assert m.model.language_model.lm_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="2 images but 1 questions"):
        m.answer_log_odds(images, questions[:1], ANSWERS)


def test_teaching_lowers_the_cross_entropy_and_moves_only_judge_parameters(unified):
    m = unified
    verdicts = _verdicts([1.0, 0.0, 0.5, 0.0, 1.0, 0.0])
    before = judge_agreement(m, verdicts, ANSWERS)
    # the cross-entropy by hand from the log-odds: −[s·log σ(l) + (1 − s)·log(1 − σ(l))], averaged
    with torch.no_grad():
        lo = m.answer_log_odds([v.image for v in verdicts], [v.question for v in verdicts], ANSWERS).tolist()
    by_hand = np.mean([-(v.score * math.log(1 / (1 + math.exp(-x))) + (1 - v.score) * math.log(1 / (1 + math.exp(x))))
                       for v, x in zip(verdicts, lo)])
    assert before["cross_entropy"] == pytest.approx(by_hand, abs=1e-5)
    assert before["images"] == 6 and before["perfect"] == 2
    frozen = {n: p.detach().clone() for n, p in m.model.named_parameters() if not m.is_judge_only_parameter(n)}
    losses = teach_judge(m, verdicts, ANSWERS, steps=40, batch_size=6, lr=3e-3, seed=0)
    after = judge_agreement(m, verdicts, ANSWERS)
    assert len(losses) == 40 and after["cross_entropy"] < before["cross_entropy"] - 0.1
    assert after["auroc"] == 1.0  # six images to learn by heart: the two scored 1 rank first
    assert all(torch.equal(p, frozen[n]) for n, p in m.model.named_parameters() if n in frozen)
    assert not any(p.requires_grad for p in m.model.parameters())  # left frozen, as a judge should be


def test_a_nonfinite_loss_stops_teaching_before_any_update(unified, monkeypatch):
    m = unified
    state = {n: p.detach().clone() for n, p in m.model.named_parameters()}
    monkeypatch.setattr(BagelUnified, "answer_log_odds",
                        lambda self, images, questions, answers: torch.full((len(images),), float("nan"),
                                                                            requires_grad=True))
    with pytest.raises(FloatingPointError, match="at step 0"):
        teach_judge(m, _verdicts([1.0, 0.0]), ANSWERS, steps=3, batch_size=2)
    assert all(torch.equal(p, state[n]) for n, p in m.model.named_parameters())


def _eval_folder(folder: Path, scores: list[float | None]) -> Path:
    (folder / "images").mkdir(parents=True)
    records = []
    for i, (image, score) in enumerate(zip(_images(len(scores), seed=1), scores)):
        image.save(folder / "images" / f"{i}.png")
        records.append({"category": "color", "index": i, "k": 0, "seed": 0, "prompt": PROMPTS[i % 2],
                        "file": f"images/{i}.png", "score": score})
    (folder / "images.json").write_text(json.dumps(records))
    (folder / "scores.json").write_text(json.dumps({"benchmark": "shapes", "split": "train", "overall": 0.0}))
    return folder


def test_the_command_writes_a_checkpoint_that_draws_as_its_source_did(tiny_checkpoint, tmp_path):
    lessons = _eval_folder(tmp_path / "lessons", [1.0, 0.0, None, 0.5])
    check = _eval_folder(tmp_path / "check", [0.0, 1.0])
    out = tmp_path / "taught"
    teach_main(["--checkpoint", str(tiny_checkpoint), "--from-eval", str(lessons), "--check", str(check),
                "--out", str(out), "--steps", "3", "--batch-size", "2", "--lr", "1e-3", "--warmup-steps", "0",
                "--device", "cpu"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["lessons"] == 3 and manifest["unscored_left_out"] == 1 and manifest["templates"] == "shapes"
    assert manifest["answers"] == list(ANSWERS) and manifest["check_before"]["images"] == 2
    assert len(manifest["loss_every_10"]) == 1 and manifest["check_after"]["cross_entropy"] > 0
    source, taught = (load_unified_model(ModelConfig(path=str(f), dtype="float32", device="cpu"))
                      for f in (tiny_checkpoint, out))
    moved = {n for (n, a), b in zip(source.model.named_parameters(), taught.model.parameters()) if not torch.equal(a, b)}
    assert moved and all(taught.is_judge_only_parameter(n) for n in moved)


def test_render_and_variant_lessons_are_the_worlds_truth(tiny_checkpoint, tmp_path):
    """--renders adds correct renders of train prompts (the world's truth scores them 1); --variants asks about
    each lesson image variants of its prompt in the attributes named, each scored by the world's truth of that image
    against that prompt, the same draws from the same seed."""
    from srum.cli.teach_judge import load_lessons, render_lessons, variant_lessons
    from srum.worlds.shapes import world

    prompts, images, scores, unscored = load_lessons(_eval_folder(tmp_path / "lessons", [1.0, 0.0, 0.5]))
    assert (prompts, scores, unscored) == ([PROMPTS[0], PROMPTS[1], PROMPTS[0]], [1.0, 0.0, 0.5], 0)
    r_prompts, renders, r_scores = render_lessons(world, 3, seed=0)
    assert r_prompts == [item.prompt for item in world.prompts("train")[:3]] and r_scores == [1.0, 1.0, 1.0]
    asked, pictures, truths = variant_lessons(world, prompts, images, ["shape", "color"], 2, seed=0)
    assert len(asked) == 6
    for i, (prompt, picture, truth) in enumerate(zip(asked, pictures, truths)):
        own = prompts[i // 2]
        assert picture is images[i // 2] and prompt != own
        assert prompt in world.prompt_variants(own, ["shape"]) or prompt in world.prompt_variants(own, ["color"])
        assert truth == float(world.truth([picture], [prompt])[0])
    assert variant_lessons(world, prompts, images, ["shape", "color"], 2, seed=0)[0] == asked
    out = tmp_path / "taught"
    teach_main(["--checkpoint", str(tiny_checkpoint), "--from-eval", str(tmp_path / "lessons"), "--out", str(out),
                "--renders", "2", "--variants", "shape,color", "--steps", "1", "--device", "cpu"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["lessons"] == 15 and manifest["variant_lessons"] == 10  # (3 + 2) images, 2 variants each


def test_the_command_refuses_in_one_line(tiny_checkpoint, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match=r"teach_judge.py: .*empty/images.json is missing"):
        teach_main(["--checkpoint", str(tiny_checkpoint), "--from-eval", str(empty), "--out", str(tmp_path / "o")])
    bad = _eval_folder(tmp_path / "bad", [1.5])
    with pytest.raises(SystemExit, match=r"score 1.5 of images/0.png is outside \[0, 1\]"):
        teach_main(["--checkpoint", str(tiny_checkpoint), "--from-eval", str(bad), "--out", str(tmp_path / "o")])
    (bad / "images" / "0.png").write_bytes(b"\x89PNG truncated")
    (bad / "images.json").write_text(json.dumps([{**json.loads((bad / "images.json").read_text())[0], "score": 1.0}]))
    with pytest.raises(SystemExit, match=r"bad/images/0.png: unreadable image .*rerun the evaluation"):
        teach_main(["--checkpoint", str(tiny_checkpoint), "--from-eval", str(bad), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="already exists"):
        teach_main(["--checkpoint", str(tiny_checkpoint), "--from-eval", str(bad), "--out", str(empty)])
    with pytest.raises(SystemExit, match=r"--variants flavour: \['flavour'\] are not attributes"):
        teach_main(["--checkpoint", str(tiny_checkpoint), "--from-eval", str(_eval_folder(tmp_path / "v", [0.5])),
                    "--variants", "flavour", "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
