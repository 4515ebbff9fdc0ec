"""How far a round's sampled latents lie from the autoencoder's encodings of their images (srum.evaluation.latent_gap).

    python launch/latent_gap.py checkpoints/shapes-tiny runs/srum-shapes/round1/generate --limit 256

The checkpoint must be the model that drew the folder (its autoencoder encodes the images). The folder must be one
drawn with generate.reencode=false, whose latents are the sampler's.
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
from srum.evaluation.latent_gap import latent_gap  # noqa: E402
from srum.models.registry import load_unified_model  # noqa: E402
from srum.records import GenerateFolder  # noqa: E402
from srum.utils.artifacts import read_image  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path, help="the model folder that drew the samples")
    ap.add_argument("generate", type=Path, help="a round's generate folder")
    ap.add_argument("--limit", type=int, default=256, help="at most this many images, in job order")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    manifest = args.generate / "manifest.json"
    if not manifest.is_file():
        raise SystemExit(f"latent_gap.py: {args.generate} has no manifest.json (not a finished generate folder)")
    if json.loads(manifest.read_text())["config"]["generate"].get("reencode"):
        raise SystemExit(f"latent_gap.py: {args.generate} was drawn with generate.reencode=true: its latents are "
                         "encodings already")
    folder = GenerateFolder(args.generate)
    latents, images = [], []
    for k in folder.finished():
        if len(images) >= args.limit:
            break
        rows = folder.read_rows(k)
        latents.append(folder.read_latents(k, len(rows)))
        images += [read_image(folder.image_path(r)) for r in rows]
    model = load_unified_model(ModelConfig(path=str(args.checkpoint)))
    n = min(args.limit, len(images))
    gap = latent_gap(torch.cat(latents)[:n], model.encode_posteriors(images[:n]))
    print(f"{gap.images} images; posterior std per channel {', '.join(f'{s:.2f}' for s in gap.posterior_std)}; "
          f"variance of the posterior means {gap.mean_variance:.3f}")
    print(f"squared distance from the posterior mean, over that variance: sampler's latents {gap.sampled_gap:.2f}, "
          f"a posterior sample {gap.encoded_gap:.2f}")


if __name__ == "__main__":
    main()
