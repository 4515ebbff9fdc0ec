"""How strongly each attribute word of a prompt moves checkpoints' velocity (srum.evaluation.conditioning).

    python launch/conditioning.py checkpoints/shapes-tiny runs/srum-shapes-online/round4/export \
        --benchmark shapes --split val --limit 40 --kinds color shape texture relation

The world renders one correct image per prompt; every checkpoint scores the same images at the same draws, so a
row's change against the first is paired. `--from-eval DIR` takes instead the images of an evaluation folder that met
their prompt (score 1 under the world's judge: the model's own correct drawings) and, for comparison, renders of the
same prompts. Needs a world with `prompt_variants`.
"""

from __future__ import annotations

import os
import sys

# launch/srum.py would shadow the `srum` package for scripts run from this folder: drop the folder from the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from srum.config import ModelConfig  # noqa: E402
from srum.evaluation.conditioning import attribute_gaps, wrong_variants  # noqa: E402
from srum.models.registry import load_unified_model  # noqa: E402
from srum.utils.artifacts import read_image  # noqa: E402
from srum.utils.io import inside  # noqa: E402
from srum.worlds.registry import WORLDS, world_for  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", type=Path, help="model folders; the first is the baseline")
    ap.add_argument("--benchmark", required=True, choices=sorted(WORLDS), help="a prompt world")
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=40, help="prompts per category")
    ap.add_argument("--from-eval", type=Path, help="an evaluation folder: score its images that met their prompt")
    ap.add_argument("--kinds", nargs="+", default=["color", "shape", "texture", "relation"],
                    help="attribute kinds the world's prompt_variants knows")
    ap.add_argument("--repeats", type=int, default=2, help="(timestep, noise) draws per image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    world = world_for(args.benchmark)
    if not hasattr(world, "prompt_variants"):
        raise SystemExit(f"conditioning.py: the world {args.benchmark!r} has no prompt_variants hook")
    for ck in args.checkpoints:
        if not ck.is_dir():
            raise SystemExit(f"conditioning.py: checkpoint {ck} is not a folder")
    sets = {}
    if args.from_eval:
        index = args.from_eval / "images.json"
        if not index.is_file():
            raise SystemExit(f"conditioning.py: --from-eval {args.from_eval} has no images.json")
        met = [r for r in json.loads(index.read_text()) if r.get("score") == 1.0]
        if not met:
            raise SystemExit(f"conditioning.py: no image of {index} met its prompt (score 1)")
        prompts = [r["prompt"] for r in met]
        sets["drawn"] = [read_image(inside(args.from_eval, r["file"], index)) for r in met]
    else:
        prompts = [it.prompt for it in world.prompts(args.split, args.limit)]
    seeds = [args.seed * 1_000_003 + i for i in range(len(prompts))]
    sets["rendered"] = world.render_truth(prompts, seeds, world.IMAGE_SIZE)
    try:
        wrong = {name: wrong_variants(prompts, images, args.kinds, world.prompt_variants, world.truth, args.seed)
                 for name, images in sets.items()}
    except ValueError as e:
        raise SystemExit(f"conditioning.py: --kinds: {e}") from None
    base: dict[str, list] = {}
    print("| checkpoint | images | " + " | ".join(f"{k}: gap, own prompt better" for k in args.kinds) + " |")
    print("|---" * (len(args.kinds) + 2) + "|")
    for ck in args.checkpoints:
        model = load_unified_model(ModelConfig(path=str(ck), dtype="float32", device="cpu"))
        grid = model.latent_grid(world.IMAGE_SIZE, world.IMAGE_SIZE)
        for name, images in sets.items():
            x0 = model.latents_to_tokens(model.encode_images(images, seeds))
            gaps = attribute_gaps(model, x0, prompts, wrong[name], grid, repeats=args.repeats, seed=args.seed)
            first = base.setdefault(name, gaps)
            cells = [f"{a.gap:+.4f} ± {a.stderr:.4f}" + (f" ({a.gap - b.gap:+.4f})" if first is not gaps else "")
                     + f", {a.label_better:.2f}" for a, b in zip(gaps, first)]
            print(f"| {ck} | {name} | " + " | ".join(cells) + " |", flush=True)
    for name, gaps in base.items():
        print(f"\n{name}: images with a wrong variant: " + ", ".join(f"{a.kind} {a.n}" for a in gaps)
              + f" of {len(prompts)}")


if __name__ == "__main__":
    main()
