"""Teach a checkpoint's judge the verdicts of evaluations' judge (a world's oracle, a VLM) on their saved images.

    python launch/evaluate.py --checkpoint checkpoints/shapes-tiny --benchmark shapes --split train --limit 200 \
        --out runs/eval-train
    python launch/teach_judge.py --checkpoint checkpoints/shapes-tiny --from-eval runs/eval-train \
        --check runs/eval-base --out runs/shapes-tiny-taught-judge

The new checkpoint draws exactly the images --checkpoint draws (only judge-only parameters change, see
srum/judge_teaching.py); start a run from it (model.path=) to reward with the taught judge, which is an upper bound,
not self-rewarding. With --variants (a prompt world) each image is also asked about prompts that differ
from its own in the attributes named, scored by the world's judge: without them the judge learns to rate pictures
and forgets to read prompts (on ShapesWorld its AUROC on renders against swapped prompts fell from 0.93 to 0.54).
--check DIR (an evaluation of prompts not taught, e.g. val) measures the judge's agreement with
its teacher before and after; every number goes into the checkpoint's manifest.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path

from PIL import Image

from srum.config import ModelConfig
from srum.guidance import guide_answers, judge_questions
from srum.judge_teaching import Verdict, judge_agreement, teach_judge
from srum.models.registry import BACKENDS, load_unified_model
from srum.rewards.judge import JudgeMode, templates_for
from srum.utils.artifacts import DamagedArtifact, read_image, read_json
from srum.utils.device import rank_device
from srum.utils.io import atomic_folder, inside, write_manifest
from srum.utils.logging import setup_logging
from srum.worlds.registry import world_for

logger = logging.getLogger("srum.teach_judge")
RERUN = "rerun the evaluation that wrote it (launch/evaluate.py), or leave its folder out"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, type=Path, help="the model folder whose judge is taught")
    ap.add_argument("--from-eval", required=True, nargs="+", type=Path,
                    help="evaluation folders (launch/evaluate.py --out) whose images and scores are the lessons")
    ap.add_argument("--check", nargs="*", type=Path, default=[],
                    help="evaluation folders not taught, on which agreement is measured before and after")
    ap.add_argument("--out", required=True, type=Path, help="new folder for the taught checkpoint")
    ap.add_argument("--templates", help="judge question set (default: the evaluated world's, else the logits default)")
    ap.add_argument("--variants", help="a prompt world's attributes, e.g. shape,color,relation: each image is also asked "
                    "about variants of its prompt that differ only in them, scored by the world's judge, so the "
                    "judge learns to read the prompt and not only to rate the picture")
    ap.add_argument("--renders", type=int, default=0, help="a prompt world: this many correct renders of its train "
                    "prompts join the lessons (with --variants, their variants too), so the judge keeps its yes for "
                    "pictures that meet their prompt")
    ap.add_argument("--variants-per-image", type=int, default=2, help="variants asked about each image")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup-steps", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0, help="the order the lessons are drawn in")
    ap.add_argument("--backend", default="bagel", choices=sorted(BACKENDS))
    ap.add_argument("--device", default="auto")
    return ap.parse_args(argv)


def load_lessons(folder: Path) -> tuple[list[str], list[Image.Image], list[float], int]:
    """An evaluation's prompts, images and scores, and how many images had no score (an unparseable judge answer):
    those are left out and counted."""
    images_json = folder / "images.json"
    if not images_json.is_file():
        raise FileNotFoundError(f"{images_json} is missing: pass folders written by launch/evaluate.py --out")
    records = read_json(images_json, RERUN)
    scored = [r for r in records if r.get("score") is not None]
    for r in scored:
        if not 0.0 <= r["score"] <= 1.0:
            raise ValueError(f"{images_json}: score {r['score']} of {r['file']} is outside [0, 1]")
    return ([r["prompt"] for r in scored], [read_image(inside(folder, r["file"], images_json), RERUN) for r in scored],
            [float(r["score"]) for r in scored], len(records) - len(scored))


def world_of(benchmark: str | None, flag: str, hook: str):
    """The prompt world `benchmark` names, refused in one line when it is none or lacks `hook`."""
    world = world_for(benchmark or "")
    if world is None or not hasattr(world, hook):
        raise ValueError(f"{flag} needs evaluations of a prompt world that offers {hook}; these are {benchmark}")
    return world


def render_lessons(world, n: int, seed: int) -> tuple[list[str], list[Image.Image], list[float]]:
    """`n` correct renders of the world's train prompts (in turn, seeded), scored by the world's truth: lessons that
    keep the judge saying yes to a picture that meets its prompt, which the model's own pictures rarely do."""
    items = world.prompts("train")
    prompts = [items[i % len(items)].prompt for i in range(n)]
    images = world.render_truth(prompts, [seed * 1_000_003 + i for i in range(n)], world.IMAGE_SIZE)
    return prompts, images, [float(s) for s in world.truth(images, prompts)]


def variant_lessons(world, prompts: list[str], images: list[Image.Image], kinds: list[str], per_image: int,
                    seed: int) -> tuple[list[str], list[Image.Image], list[float]]:
    """`per_image` variants of each image's prompt, each differing in one attribute of `kinds` (drawn from `seed`:
    the kind, then the variant among the world's `prompt_variants` in that kind alone), and the world's truth of
    the image against each: hard counterfactual lessons, as the understanding benchmark swaps one attribute."""
    rng = random.Random(seed)
    asked, pictures = [], []
    for prompt, image in zip(prompts, images):
        try:
            by_kind = [v for v in (world.prompt_variants(prompt, [k])[1:] for k in kinds) if v]
        except ValueError as e:
            raise ValueError(f"--variants {','.join(kinds)}: {e}") from None
        for _ in range(per_image if by_kind else 0):
            asked.append(rng.choice(rng.choice(by_kind)))
            pictures.append(image)
    return asked, pictures, [float(s) for s in world.truth(pictures, asked)]


def evaluated_benchmark(folder: Path) -> str | None:
    """The benchmark an evaluation folder evaluated (its scores.json), or None where that file is absent."""
    scores = folder / "scores.json"
    return read_json(scores, RERUN).get("benchmark") if scores.is_file() else None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    if args.variants_per_image < 1 or args.renders < 0:
        sys.exit(f"teach_judge.py: --variants-per-image {args.variants_per_image} must be >= 1 and --renders "
                 f"{args.renders} >= 0")
    if args.out.exists():
        sys.exit(f"teach_judge.py: {args.out} already exists: choose another output folder")
    try:
        run(args)
    except (FileNotFoundError, ValueError, FloatingPointError, DamagedArtifact) as e:
        sys.exit(f"teach_judge.py: {e}")


def run(args: argparse.Namespace) -> None:
    """Load the lessons and checks, teach, measure, and write the taught checkpoint with its manifest."""
    benchmark = evaluated_benchmark(args.from_eval[0])
    # the question set the world's own model was taught, if the lessons are a world's; else the logits default
    name = args.templates or (benchmark if world_for(benchmark or "") is not None else None)
    templates = templates_for(name, JudgeMode.logits)
    answers = guide_answers(templates)
    checks, unscored, n_variants = [], 0, 0
    prompts, images, scores = [], [], []

    def add(more: tuple[list[str], list[Image.Image], list[float]]) -> None:
        for into, items in zip((prompts, images, scores), more):
            into.extend(items)

    for folder in args.from_eval:
        *lesson, missing = load_lessons(folder)
        add(lesson)
        unscored += missing
    if args.renders:
        add(render_lessons(world_of(benchmark, "--renders", "render_truth"), args.renders, args.seed))
    if args.variants:
        extra = variant_lessons(world_of(benchmark, "--variants", "prompt_variants"), prompts, images,
                                args.variants.split(","), args.variants_per_image, args.seed)
        n_variants = len(extra[0])
        add(extra)
    lessons = [Verdict(im, q, sc) for im, q, sc in zip(images, judge_questions(templates, prompts), scores)]
    for folder in args.check:
        p, im, sc, missing = load_lessons(folder)
        checks += [Verdict(*v) for v in zip(im, judge_questions(templates, p), sc)]
        unscored += missing
    logger.info("lessons=%d (renders %d, variants %d) check=%d unscored_left_out=%d answers=%s", len(lessons),
                args.renders, n_variants, len(checks), unscored, answers)
    model = load_unified_model(ModelConfig(backend=args.backend, path=str(args.checkpoint), dtype="float32",
                                           device=str(rank_device(args.device, 0))))
    before = judge_agreement(model, checks, answers) if checks else None
    losses = teach_judge(model, lessons, answers, args.steps, args.batch_size, args.lr, args.seed, args.warmup_steps)
    after = judge_agreement(model, checks, answers) if checks else None
    taught = judge_agreement(model, lessons, answers)
    for label, agreement in (("check before", before), ("check after", after), ("lessons after", taught)):
        if agreement is not None:
            logger.info("%s: %s", label, " ".join(f"{k}={v}" for k, v in agreement.items()))
    with atomic_folder(args.out) as tmp:
        model.save_pretrained(tmp)
        write_manifest(tmp, json.loads(json.dumps(vars(args), default=str)), extra={
            "stage": "teach_judge", "templates": name, "answers": list(answers), "lessons": len(lessons),
            "variant_lessons": n_variants, "unscored_left_out": unscored,
            "loss_first_last": [losses[0], losses[-1]], "loss_every_10": losses[::10],
            "check_before": before, "check_after": after, "lessons_after": taught})
    logger.info("taught judge written to %s", args.out)


if __name__ == "__main__":
    main()
