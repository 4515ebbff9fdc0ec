"""Re-draw a round's failed samples around the regions its judge accepted, against fresh draws (diagnostic).

    python launch/repair.py --run runs/ablate/oracle [--round 1] [--limit 256] [--tries 2] [--out runs/repair]

For each of up to `--limit` images of the round that its prompt world's exact judge scores below 1 and whose own
judge accepted at least one region, the accepted regions' tokens (less any that touch a rejected region) are held at
the sample's latents and the rest is drawn again (`srum.evaluation.repair`), `--tries` times with new seeds; the
same prompts are also drawn afresh with the same seeds. Writes OUT/summary.json (per mode: the share of perfect
tries, the mean exact score and its gain over the originals, the share of images with a perfect try; held against
fresh paired over images; all of it also split by whether the picture has a rejected region) and OUT/grid.png
(original, held, fresh).
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
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from srum.config import load_config  # noqa: E402
from srum.evaluation.bootstrap import paired_bootstrap  # noqa: E402
from srum.evaluation.repair import accepted, held_tokens, repaint_guide  # noqa: E402
from srum.pipeline import load_model  # noqa: E402
from srum.records import GenerateFolder, ScoreFolder  # noqa: E402
from srum.utils.dist import DistInfo  # noqa: E402
from srum.utils.io import atomic_path, atomic_write_json  # noqa: E402
from srum.worlds.registry import world_for  # noqa: E402

MODES = ("held", "fresh")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a run folder (its config.yaml and roundN stages)")
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--limit", type=int, default=256, help="failed images to re-draw, spread over the round")
    ap.add_argument("--tries", type=int, default=2, help="re-draws of each, with new seeds")
    ap.add_argument("--seed", type=int, default=900_000, help="first seed of the re-draws")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/repair"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.run / "config.yaml", [])
    world = world_for(cfg.generate.prompts)
    if world is None:
        sys.exit(f"repair.py: {args.run}: generate.prompts={cfg.generate.prompts!r} is not a prompt world, so there "
                 "is no exact judge to score the re-drawn images")
    rd = args.run / f"round{args.round}"
    drawn, judged = GenerateFolder(rd / "generate"), ScoreFolder(rd / "score")
    for stage, folder in (("generate", drawn), ("score", judged)):
        if not folder.finished():
            sys.exit(f"repair.py: {rd / stage}: no finished chunk (did round {args.round} reach its {stage} stage?)")
    rows, latents = drawn.all_rows_and_latents()
    latent_of = {r.job: x for r, x in zip(rows, latents)}
    failed = [j for j in judged.all_rows()
              if j.truth is not None and j.truth < 1.0 and any(accepted(s) for s in j.region_scores)]
    if not failed:
        sys.exit(f"repair.py: {rd / 'score'}: no image below a perfect score with a region its judge accepted")
    chosen = failed[::max(len(failed) // args.limit, 1)][:args.limit]
    drew_with = cfg.model.path if args.round == 1 else args.run / f"round{args.round - 1}" / "export"
    model = load_model(drew_with, cfg, DistInfo(0, 1, 0, None))
    size = (cfg.generate.resolution, cfg.generate.resolution)
    grid = model.latent_grid(*size)

    scores = {m: [] for m in MODES}  # per mode, per try: records of (image index, exact score)
    pictures: dict[str, list[Image.Image]] = {m: [] for m in MODES}
    held: list[float] = []  # each image's share of tokens held
    batches = [chosen[i:i + args.batch_size] for i in range(0, len(chosen), args.batch_size)]
    for b, batch in enumerate(tqdm(batches, desc="repair")):
        prompts = [j.prompt for j in batch]
        known = model.latents_to_tokens(torch.stack([latent_of[j.job] for j in batch]))
        keep = torch.stack([held_tokens(j.boxes, j.region_scores, size, grid) for j in batch])
        held += keep.float().mean(dim=1).tolist()
        rejected = [any(accepted(s) is False for s in j.region_scores) for j in batch]  # a wrong object in it
        for t in range(args.tries):
            seeds = [args.seed + args.tries * (b * args.batch_size + i) + t for i in range(len(batch))]
            for mode in MODES:
                guide = repaint_guide(known, keep) if mode == "held" else None
                images = model.sample_images(prompts, seeds, *size, guide=guide).images
                for i, (j, s) in enumerate(zip(batch, world.truth(images, prompts))):
                    scores[mode].append({"category": "repair", "index": b * args.batch_size + i, "try": t,
                                         "score": float(s), "original": j.truth, "rejected": rejected[i]})
                if t == 0 and b == 0:
                    pictures[mode] = images[:16]
    summary = {"images": len(chosen), "tries": args.tries, "failed_in_round": len(failed),
               "original_mean": sum(j.truth for j in chosen) / len(chosen),
               "held_tokens_share": sum(held) / len(held), **_compare(scores)}
    # Pictures with a wrong object in them, and pictures whose failure is elsewhere (a missing object, a relation).
    for name, rejected in (("with_a_rejected_region", True), ("without_a_rejected_region", False)):
        part = {m: [r for r in recs if r["rejected"] == rejected] for m, recs in scores.items()}
        summary[name] = {"images": len(part["held"]) // args.tries, **_compare(part)} if part["held"] else None
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "summary.json", summary)
    row_of = {r.job: r for r in rows}
    originals = [Image.open(drawn.image_path(row_of[j.job])).convert("RGB")
                 for j in batches[0][:16]]
    with atomic_path(args.out / "grid.png") as tmp:
        _grid([originals, pictures["held"], pictures["fresh"]]).save(tmp, format="PNG")
    print(json.dumps(summary, indent=1))


def _compare(scores: dict[str, list[dict]]) -> dict:
    """Per mode: the share of perfect tries, the mean exact score and its gain over the originals, the share of images
    with a perfect try; and held against fresh, paired over images (tries pooled), in score and in perfect share."""
    out = {}
    for mode, recs in scores.items():
        perfect: dict[int, bool] = {}
        for r in recs:
            perfect[r["index"]] = perfect.get(r["index"], False) or r["score"] >= 1.0
        out[mode] = {"perfect": sum(r["score"] >= 1.0 for r in recs) / len(recs),
                     "mean": sum(r["score"] for r in recs) / len(recs),
                     "gain": sum(r["score"] - r["original"] for r in recs) / len(recs),
                     "images_with_a_perfect_try": sum(perfect.values()) / len(perfect)}
    out["held_vs_fresh"] = paired_bootstrap(scores["fresh"], scores["held"])
    out["held_vs_fresh_perfect"] = paired_bootstrap(
        *[[{**r, "score": float(r["score"] >= 1.0)} for r in scores[m]] for m in ("fresh", "held")])
    return out


def _grid(rows: list[list[Image.Image]]) -> Image.Image:
    """Rows of equal-size images side by side (original, held, fresh), scaled up 2× for looking at."""
    w, h = rows[0][0].size
    out = Image.new("RGB", (w * max(map(len, rows)), h * len(rows)), "white")
    for y, row in enumerate(rows):
        for x, im in enumerate(row):
            out.paste(im.convert("RGB"), (x * w, y * h))
    return out.resize((out.width * 2, out.height * 2), Image.NEAREST)


if __name__ == "__main__":
    main()
