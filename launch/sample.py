"""Draw images with a unified model from a local checkpoint folder.

    python launch/sample.py --checkpoint /data/BAGEL-7B-MoT --prompt "a red cube left of a blue ball" --out out/
"""

from __future__ import annotations

import os
import sys

# launch/srum.py would shadow the `srum` package for scripts run from this folder: drop the folder from the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse
import logging
from pathlib import Path

from srum.config import ModelConfig
from srum.models.registry import load_unified_model
from srum.utils.io import atomic_write_json
from srum.utils.logging import setup_logging

logger = logging.getLogger("launch.sample")


def main() -> None:
    ap = argparse.ArgumentParser(description="Draw images with a unified model (text-to-image).")
    ap.add_argument("--checkpoint", required=True, help="local model folder (official BAGEL release or srum format)")
    ap.add_argument("--prompt", action="append", required=True, help="repeat for several prompts")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0, help="prompt i uses seed + i")
    ap.add_argument("--size", type=int, default=1024, help="image side in pixels (multiple of 16)")
    ap.add_argument("--steps", type=int, default=50, help="num_timesteps (BAGEL runs steps − 1 Euler steps)")
    ap.add_argument("--cfg", type=float, default=4.0, help="text guidance scale")
    ap.add_argument("--think", action="store_true", help="plan in text first, then draw")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    setup_logging()

    model = load_unified_model(ModelConfig(path=args.checkpoint, dtype=args.dtype, device=args.device),
                               sampling={"num_timesteps": args.steps, "cfg_text_scale": args.cfg})
    seeds = [args.seed + i for i in range(len(args.prompt))]
    result = model.sample_images(args.prompt, seeds, args.size, args.size, think=args.think)
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for i, (prompt, seed, image) in enumerate(zip(args.prompt, seeds, result.images)):
        path = args.out / f"{i:04d}.png"
        image.save(path)
        records.append({"file": path.name, "prompt": prompt, "seed": seed,
                        "plan": result.plans[i] if result.plans else None})
        logger.info("image=%s seed=%d prompt=%r", path, seed, prompt)
    atomic_write_json(args.out / "samples.json", records)


if __name__ == "__main__":
    main()
