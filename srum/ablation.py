"""Ablations of one base recipe: each variant is a list of `key=value` overrides, run and evaluated alike.

Every variant keeps the recipe's seeds and sample budget, so differences come from the switched part
only. A variant is finished when its evaluation `scores.json` exists; rerunning skips it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from srum.utils.io import atomic_path, atomic_write_text

VARIANTS: dict[str, list[str]] = {
    "srum": [],  # the recipe as it is: global + local rewards, official map, its constraint
    "global_only": ["reward.use_regions=false"],
    "local_only": ["judge.global_layout=false", "reward.drop_zero_global=false"],
    "constraint_none": ["objective.constraint=none"],
    "constraint_kl": ["objective.constraint=kl", "objective.kl_weight=0.5"],
    "binarized": ["reward.binarize=true"],
    "signed_map": ["reward.map=signed"],
    "text_judge": ["judge.mode=text"],
    "self_distill": ["reward.map=uniform"],  # reward ≡ 1: SFT on the model's own samples
    # The recipe again with other training seeds (init noise, sample order, timesteps): the training noise that a
    # variant's difference from `srum` must beat, beside the evaluation noise of the seed spread.
    "srum_reseeded": ["train.seed=1234", "train.data_seed=7"],
}


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple[str, ...]
    out_dir: Path

    @property
    def scores(self) -> Path:
        """The round's own evaluation (the first evaluation seed)."""
        return self.out_dir / "round1" / "eval" / "scores.json"

    @property
    def export(self) -> Path:
        return self.out_dir / "round1" / "export"

    def extra_eval_dir(self, seed: int) -> Path:
        """Where the export is evaluated again with another seed, to measure the run's evaluation noise."""
        return self.out_dir / f"eval-seed{seed}"

    @property
    def done(self) -> bool:
        return self.scores.is_file()


def expand(names: list[str], out_root: Path, extra: list[str] = ()) -> list[Variant]:
    """The runs for `names` (validated against VARIANTS), each in `out_root/<name>` with the extra overrides."""
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown ablation variant(s) {unknown}; expected some of {list(VARIANTS)}")
    return [Variant(n, (*VARIANTS[n], *extra, f"output.dir={out_root / n}"), out_root / n) for n in names]


def shared_samples(variants: list[Variant]) -> Path | None:
    """A finished round-1 generate folder of one of `variants`: the same model, prompts and seeds draw the same
    images for every variant (no variant changes `generate.*`), so later variants link it instead of redrawing."""
    for v in variants:
        folder = v.out_dir / "round1" / "generate"
        if (folder / "manifest.json").is_file():
            return folder
    return None


def table_rows(runs: list[tuple[str, list[dict]]]) -> tuple[list[str], list[list]]:
    """(categories, rows): one row per run (the base model first), the mean over its evaluation seeds per category
    and overall, then the spread (max − min) of its overall score over those seeds (None with a single seed)."""
    categories = list(runs[0][1][0]["categories"])

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    rows = []
    for name, seeds in runs:
        overall = [s["overall"] for s in seeds]
        rows.append([name, *[mean([s["categories"][c] for s in seeds]) for c in categories], mean(overall),
                     max(overall) - min(overall) if len(seeds) > 1 else None])
    return categories, rows


def write_tables(out: Path, categories: list[str], rows: list[list]) -> None:
    """`ablation.md`, `ablation.csv` and `ablation.png` (overall score per run with its seed spread)."""
    header = ["run", *categories, "overall", "seed spread"]
    fmt = lambda v: "" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    atomic_write_text(out / "ablation.md", "\n".join(md) + "\n")
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *[[fmt(v) for v in row] for row in rows]])
    atomic_write_text(out / "ablation.csv", buf.getvalue())
    with atomic_path(out / "ablation.png") as tmp:
        bar_chart([(row[0], row[-2], row[-1]) for row in rows]).save(tmp, format="PNG")


def bar_chart(values: list[tuple[str, float, float | None]], width: int = 640) -> Image.Image:
    """Horizontal bars of overall scores in [0, 1], each with its seed spread as a whisker; the base's spread is
    also drawn as a grey band across all rows, so a difference inside it reads as noise."""
    row_h, left = 26, 130
    img = Image.new("RGB", (width, row_h * len(values) + 20), "white")
    d = ImageDraw.Draw(img)
    scale = width - left - 60
    _, base, base_spread = values[0]
    if base_spread:
        half = base_spread / 2
        d.rectangle([left + (base - half) * scale, 0, left + (base + half) * scale, img.height], fill=(230, 230, 230))
    for i, (name, v, spread) in enumerate(values):
        y = 10 + i * row_h
        d.text((5, y + 4), name, fill="black")
        d.rectangle([left, y, left + v * scale, y + row_h - 8], fill=(70, 110, 200) if i else (120, 120, 120))
        if spread:
            mid = y + (row_h - 8) // 2
            d.line([left + (v - spread / 2) * scale, mid, left + (v + spread / 2) * scale, mid], fill="black", width=2)
        d.text((left + v * scale + 4, y + 4), f"{v:.3f}", fill="black")
    return img


def load_scores(path: Path) -> dict:
    return json.loads(path.read_text())
