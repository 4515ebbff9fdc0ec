"""A larger tiny BAGEL for ShapesWorld: its pretraining step time against the shipped size, side by side.

Issue 11's capacity lever is a larger toy model within the 30 MB checkpoint budget. Its cost is pretraining time:
this times one step of the joint stage (the same data stream, losses, patch head and AdamW as
`launch/pretrain_shapes.py`) for the shipped decoder and two larger ones, interleaved, and prints each one's
parameters, checkpoint size and time per step against the shipped size.

    python benchmarks/model_size.py [--checkpoint checkpoints/shapes-tiny] [--repeats 6]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from srum.models.bagel.model import Bagel
from srum.models.bagel.unified import BagelUnified
from srum.worlds.shapes.model import shapes_bagel_config
from srum.worlds.shapes.patch_labels import N_CLASSES
from srum.worlds.shapes.pretrain import JointStage, joint_batch, joint_losses, patch_shape_batch, patch_shape_loss
from srum.worlds.shapes.tasks import ShapesTasks

# decoder sizes: (layers, hidden, MLP width, query heads, KV heads); the first is the shipped one
SIZES = {"shipped 4 × 192": (4, 192, 512, 6, 2), "deeper 8 × 192": (8, 192, 512, 6, 2),
         "wider 4 × 256": (4, 256, 704, 8, 2)}


def build(size: tuple[int, int, int, int, int], vae_config) -> Bagel:
    layers, hidden, mlp, heads, kv = size
    config = shapes_bagel_config(64)
    config.llm_config.update(dict(num_hidden_layers=layers, hidden_size=hidden, intermediate_size=mlp,
                                  num_attention_heads=heads, num_key_value_heads=kv))
    config.vae_config = vae_config
    torch.manual_seed(0)
    return Bagel(config)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/shapes-tiny")
    ap.add_argument("--repeats", type=int, default=6)
    args = ap.parse_args()
    shipped = BagelUnified.from_pretrained(args.checkpoint)
    vae, tokenizer = shipped.vae, shipped.tokenizer
    vae_params = sum(p.numel() for p in vae.parameters())
    stage = JointStage(patch_shape_weight=1.0)
    runs = {}
    for name, size in SIZES.items():
        model = build(size, shipped.config.vae_config).train()
        head = torch.nn.Linear(model.config.vit_config.hidden_size, N_CLASSES)
        params = [*model.parameters(), *head.parameters()]
        runs[name] = (model, head, torch.optim.AdamW(params, lr=1e-4), sum(p.numel() for p in model.parameters()))

    def step(name: str, i: int) -> None:
        model, head, opt, _ = runs[name]
        tasks = ShapesTasks(seed=i, image_size=64)
        generator = torch.Generator().manual_seed(i)
        t2i, target, qa = joint_batch(model, vae, tokenizer, tasks, stage, 0.1, generator)
        mse, ce = joint_losses(model, t2i, target, qa)
        patch_ce, _ = patch_shape_loss(model, head, *patch_shape_batch(tasks, stage, model.config))
        (mse + ce + patch_ce).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = {name: [] for name in runs}
    for name in runs:
        step(name, 0)  # warm-up
    for i in range(1, args.repeats + 1):  # interleaved: every size sees the same load and the same batches
        for name in runs:
            t0 = time.perf_counter()
            step(name, i)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["shipped 4 × 192"])
    print(f"joint-stage step ({stage.t2i_batch} t2i + {stage.qa_batch} understanding + {stage.patch_batch} patch "
          f"renders), {torch.get_num_threads()} threads, median of {args.repeats}")
    for name, (_, _, _, n) in runs.items():
        t = statistics.median(times[name])
        print(f"{name:>16}: {n / 1e6:5.2f} M params (+{vae_params / 1e6:.2f} M VAE), "
              f"{(n + vae_params) * 4 / 2**20:5.1f} MiB float32, {t * 1000:7.1f} ms/step, ratio {t / base:.2f}x")


if __name__ == "__main__":
    main()
