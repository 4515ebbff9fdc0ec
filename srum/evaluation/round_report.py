"""Per-round HTML page: each image with its region boxes, region/global scores and reward-map overlay."""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.nn import functional as F

from srum.records import GenerateFolder, ScoreFolder
from srum.utils.io import atomic_path, atomic_write_text, inside


COLOUR_MAP = "coolwarm"  # diverging: a signed map's −1 (blue) and +1 (red) apart, 0 neutral white


def heat(values: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] for map values in [−1, 1] (clamped), on COLOUR_MAP."""
    from matplotlib import colormaps

    return colormaps[COLOUR_MAP]((np.clip(values, -1, 1) + 1) / 2)[..., :3].astype(np.float32)


def overlay(image: Image.Image, weights: torch.Tensor, grid: tuple[int, int]) -> Image.Image:
    """The image blended half and half with its reward map's colours, upsampled to the image size."""
    m = weights.reshape(1, 1, *grid).float()
    m = F.interpolate(m, size=(image.height, image.width), mode="nearest")[0, 0].numpy()
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return Image.fromarray((255 * (0.5 * base + 0.5 * heat(m))).round().astype(np.uint8))


def colour_scale(path: Path) -> Path:
    """A horizontal colour bar for the overlays (−1 … +1), as the report's legend."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.colors import Normalize

    fig, ax = plt.subplots(figsize=(3.6, 0.55), dpi=100)
    fig.colorbar(matplotlib.cm.ScalarMappable(Normalize(-1, 1), COLOUR_MAP), cax=ax, orientation="horizontal",
                 ticks=[-1, -0.5, 0, 0.5, 1], label="reward map value (overlay at 50 %)")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def with_boxes(image: Image.Image, boxes: list[list[int]], scores: list[float | None]) -> Image.Image:
    """Region boxes (green: score > 0, red: ≤ 0, grey: unscored), each labelled with its score."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    for box, s in zip(boxes, scores):
        color = (150, 150, 150) if s is None else (0, 170, 0) if s > 0 else (220, 0, 0)
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=color)
        label = "–" if s is None else f"{s:+.2f}"
        left, top, right, bottom = draw.textbbox((box[0] + 1, box[1] + 1), label)
        draw.rectangle([left - 1, top - 1, right, bottom], fill=(0, 0, 0))
        draw.text((box[0] + 1, box[1] + 1), label, fill=color)
    return out


def _spread_over_categories(rows: list[dict], n: int) -> list[dict]:
    """Up to n rows, taken in turn from each category (by the prompt's category where the record has one)."""
    by_cat: dict[str, list[dict]] = {}
    for r in rows:
        by_cat.setdefault(r.get("category", ""), []).append(r)
    queues = list(by_cat.values())
    out: list[dict] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def write_round_report(round_dir: Path, grid: tuple[int, int], max_images: int = 48, scale: int = 3,
                       truth: dict | None = None) -> Path:
    """`round_dir/report.html` from the generate and judge outputs (`max_images` images across the categories),
    headed by the round's reward-vs-truth numbers when the prompt world has an exact judge."""
    gen, scored = GenerateFolder(round_dir / "generate"), ScoreFolder(round_dir / "score")
    pics = round_dir / "report"
    categories = {r.job: r.category for k in gen.finished() for r in gen.read_rows(k)}
    rows, maps = [], {}
    for k in scored.finished():
        rows += [{**dataclasses.asdict(r), "category": categories.get(r.job, "")} for r in scored.read_rows(k)]
        maps.update(scored.read_maps(k))
    cells = []
    colour_scale(pics / "scale.png")
    for r in _spread_over_categories(rows, max_images):
        image = Image.open(inside(gen.path, r["file"], scored.path / "judge")).convert("RGB")
        big = (image.width * scale, image.height * scale)
        boxed = with_boxes(image.resize(big, Image.Resampling.NEAREST),
                           [[c * scale for c in b] for b in r["boxes"]], r["region_scores"])
        names = [f"{r['job']:06d}_boxes.png", f"{r['job']:06d}_reward.png"]
        with atomic_path(pics / names[0]) as tmp:
            boxed.save(tmp, format="PNG")
        if str(r["job"]) in maps:
            with atomic_path(pics / names[1]) as tmp:
                overlay(image.resize(big, Image.Resampling.NEAREST), maps[str(r["job"])], grid).save(tmp, format="PNG")
            reward_img = f'<img src="report/{names[1]}">'
        else:
            reward_img = "<div class='dropped'>dropped</div>"
        regions = ", ".join("–" if s is None else f"{s:+.2f}" for s in r["region_scores"])
        g = "–" if r["global_score"] is None else f"{r['global_score']:+.2f}"
        extra = "" if r.get("truth") is None else f" · oracle {r['truth']:.2f}"
        extra += "" if r.get("reward") is None else f" · image reward {r['reward']:.2f}"
        if r.get("trained_prompt"):  # hindsight relabelling: the reward map shown is the one for this prompt
            extra += f"<br>trained as <b>{html.escape(r['trained_prompt'])}</b> · reward {r['trained_reward']:.2f}"
        cells.append(f"<figure><img src='report/{names[0]}'>{reward_img}<figcaption><b>{html.escape(r['prompt'])}"
                     f"</b> <i>({html.escape(r['category'])})</i><br>global {g} · regions [{regions}]{extra}"
                     "</figcaption></figure>")
    head = ""
    if truth:
        fmt = lambda v: "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
        head = ("<p><b>Training reward against the world's exact judge</b> on this round's samples: "
                + " · ".join(f"{k} {fmt(truth.get(k))}" for k in
                             ("images", "reward_mean", "truth_mean", "perfect", "auroc", "spearman")) + "</p>")
        if truth.get("hacking_warning"):
            head += f"<p style='color:#b00'><b>{html.escape(truth['hacking_warning'])}</b></p>"
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>srum round</title><style>"
            "body{font-family:sans-serif} .grid{display:flex;flex-wrap:wrap;gap:12px} figure{margin:0;width:400px;"
            "font-size:12px} img{margin-right:4px} .dropped{display:inline-block;width:190px;color:#999}</style>"
            f"</head><body><h1>{html.escape(round_dir.parent.name)} · {html.escape(round_dir.name)}</h1>{head}"
            "<p>Left: region boxes with their scores (green: > 0, red: ≤ 0). Right: the reward map on the latent"
            " grid (group-relative objectives train on its signed advantages):</p><img src='report/scale.png'>"
            f"<div class='grid'>{''.join(cells)}</div></body></html>")
    return atomic_write_text(round_dir / "report.html", page)
