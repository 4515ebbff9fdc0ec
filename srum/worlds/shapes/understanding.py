"""How well the model understands ShapesWorld, and how well it judges its own images.

Understanding benchmark: for each prompt of a split, a ground-truth render and two questions in the
judge's template, "does this image show {prompt}?" — once with the true prompt (answer yes) and once
with a hard negative of one kind (colour, shape, texture, size, relation or count swapped; answer no).
The model answers yes when P(yes) > P(no) in one forward pass. Reported: accuracy per question type
and balanced accuracy (mean of yes- and no-accuracy).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from srum.models.interface import UnifiedModel
from srum.worlds.shapes.grammar import MISMATCH_KINDS, mismatch, mismatch_applies, parse_prompt, to_text
from srum.worlds.shapes.layout import sample_scene
from srum.worlds.shapes.render import render
from srum.worlds.shapes.splits import HELD_OUT
from srum.worlds.shapes.tasks import NO, YES, global_question


def self_judgement(model: UnifiedModel, images, prompts, batch_size: int = 32) -> np.ndarray:
    """P(yes) of the model's own judge question for each image/prompt pair."""
    out = []
    for i in range(0, len(images), batch_size):
        probs = model.answer_distribution(list(images[i:i + batch_size]),
                                          [global_question(p) for p in prompts[i:i + batch_size]], [YES, NO])
        out.append(probs[:, 0].float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def understanding_benchmark(model: UnifiedModel, prompts: list[str], seed: int = 0, image_size: int = 64,
                            batch_size: int = 32) -> dict:
    """Balanced yes/no accuracy on renders of `prompts` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    images, questions, answers, kinds = [], [], [], []
    for i, prompt in enumerate(prompts):
        spec = parse_prompt(prompt)
        image = render(sample_scene(spec, rng, avoid=HELD_OUT), image_size, rng)
        applicable = [k for k in MISMATCH_KINDS if mismatch_applies(spec, k)]
        kind = applicable[i % len(applicable)]  # cycle through the kinds that apply
        negative = to_text(mismatch(spec, rng, kinds=(kind,)))
        images += [image, image]
        questions += [prompt, negative]
        answers += [YES, NO]
        kinds += ["true_prompt", f"swapped_{kind}"]
    p_yes = self_judgement(model, images, questions, batch_size)
    correct = (p_yes > 0.5) == (np.array(answers) == YES)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for k, c in zip(kinds, correct):
        by_kind[k].append(bool(c))
    yes_acc = float(np.mean([c for c, a in zip(correct, answers) if a == YES]))
    no_acc = float(np.mean([c for c, a in zip(correct, answers) if a == NO]))
    return {"balanced_accuracy": (yes_acc + no_acc) / 2, "yes_accuracy": yes_acc, "no_accuracy": no_acc,
            "per_type": {k: float(np.mean(v)) for k, v in sorted(by_kind.items())},
            "n_questions": len(questions)}


def judge_auroc(model: UnifiedModel, out_dir, records: list[dict]) -> dict:
    """AUROC of the model's P(yes) on its own images against the judge's verdict "every requirement met"."""
    from pathlib import Path

    from PIL import Image
    from torchmetrics.functional.classification import binary_auroc

    images = [Image.open(Path(out_dir) / r["file"]).convert("RGB") for r in records]
    p_yes = self_judgement(model, images, [r["prompt"] for r in records])
    correct = np.array([r["score"] >= 1.0 for r in records])
    result = {"n_images": len(records), "n_correct": int(correct.sum()), "mean_p_yes": float(p_yes.mean())}
    if 0 < correct.sum() < len(correct):
        result["auroc"] = float(binary_auroc(torch.from_numpy(p_yes), torch.from_numpy(correct).long()))
    else:
        result["auroc"] = None  # undefined when every image is judged the same way
    for r, p in zip(records, p_yes):
        r["self_judge_p_yes"] = float(p)
    return result
