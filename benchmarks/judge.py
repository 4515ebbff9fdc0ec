"""Self-judge in `logits` mode vs `text` mode: throughput ratio and rank agreement on the same model and images.

Both modes ask the model the same global question about the same images; `logits` reads the expected score
off the answer-token distribution in one forward pass, `text` decodes an answer and parses it.

    python benchmarks/judge.py [--checkpoint checkpoints/shapes-tiny] [--images 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torchmetrics.functional import spearman_corrcoef

from srum.config import JudgeConfig, JudgeMode
from srum.models.bagel.unified import BagelUnified
from srum.rewards.judge import SelfJudge, templates_for
from srum.worlds.shapes.grammar import CATEGORIES, mismatch, sample_spec, to_text
from srum.worlds.shapes.layout import sample_scene
from srum.worlds.shapes.render import render


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/shapes-tiny")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    model = BagelUnified.from_pretrained(args.checkpoint)
    rng = np.random.default_rng(0)
    images, prompts = [], []
    for i in range(args.images):  # half matching prompts, half hard negatives, so there is something to rank
        spec = sample_spec(CATEGORIES[i % len(CATEGORIES)], rng)
        images.append(render(sample_scene(spec, rng), 64, rng))
        prompts.append(to_text(spec if i % 2 == 0 else mismatch(spec, rng)))
    no_regions = [[] for _ in images]
    results = {}
    for mode in (JudgeMode.logits, JudgeMode.text):
        cfg = JudgeConfig(mode=mode, templates="shapes", batch_size=args.batch_size, max_retries=0,
                          max_global_tokens=4, think=False)
        judge = SelfJudge(model, cfg, templates_for("shapes"))
        judge.judge(images[:2], prompts[:2], no_regions[:2])  # warm-up
        t0 = time.perf_counter()
        out = judge.judge(images, prompts, no_regions)
        results[mode.value] = (time.perf_counter() - t0, [j.global_score for j in out])
    t_logits, s_logits = results["logits"]
    t_text, s_text = results["text"]
    valid = [i for i, s in enumerate(s_text) if s is not None]
    rho = spearman_corrcoef(torch.tensor([s_logits[i] for i in valid]), torch.tensor([float(s_text[i]) for i in valid]))
    print(f"{args.images} images, checkpoint {args.checkpoint}, {torch.get_num_threads()} threads")
    print(f"logits: {t_logits:.3f} s ({args.images / t_logits:.1f} images/s)   "
          f"text: {t_text:.3f} s ({args.images / t_text:.1f} images/s)")
    print(f"throughput ratio logits/text: {t_text / t_logits:.2f}x")
    print(f"rank agreement (Spearman) on {len(valid)} parsed answers: {float(rho):.3f}; "
          f"text parse failures: {args.images - len(valid)}")


if __name__ == "__main__":
    main()
