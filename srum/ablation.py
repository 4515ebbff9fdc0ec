"""Ablations of one base recipe: each variant is a list of `key=value` overrides, run and evaluated alike.

Every variant keeps the recipe's seeds and sample budget, so differences come from the switched part
only. A variant is finished when its evaluation `scores.json` exists; rerunning skips it.
"""

from __future__ import annotations

import csv
import io
import json
import math
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
    "self_distill": ["reward.source=uniform"],  # reward ≡ 1: SFT on the model's own samples
    "oracle": ["reward.source=oracle"],  # the world's exact judge instead of the model's: the ceiling of the reward
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
        dot_chart([(row[0], row[-2], row[-1]) for row in rows]).save(tmp, format="PNG")


def dot_chart(values: list[tuple[str, float, float | None]], width: int = 640) -> Image.Image:
    """Overall score per run as a dot with its seed spread as a whisker, on an axis zoomed to the values (bars from
    zero would hide differences of a few hundredths); the base's spread is a grey band across all rows, so a run
    whose whisker overlaps it is not distinguishable from the base."""
    row_h, left, right, top = 24, 130, 30, 24
    img = Image.new("RGB", (width, top + row_h * len(values) + 8), "white")
    d = ImageDraw.Draw(img)
    ends = [(v - (s or 0) / 2, v + (s or 0) / 2) for _, v, s in values]
    lo = math.floor(min(a for a, _ in ends) * 100 - 1) / 100
    hi = math.ceil(max(b for _, b in ends) * 100 + 1) / 100
    x = lambda v: left + (v - lo) / (hi - lo) * (width - left - right)  # noqa: E731
    step = 0.01 * math.ceil((hi - lo) / 0.07)  # at most about eight gridlines, on whole hundredths
    ticks = [lo + i * step for i in range(int(round((hi - lo) / step)) + 1)]
    for t in ticks:
        d.line([x(t), top - 4, x(t), img.height], fill=(235, 235, 235))
        d.text((x(t) - 12, 4), f"{t:.3f}", fill="black")
    (base_lo, base_hi), base_spread = ends[0], values[0][2]
    if base_spread:
        d.rectangle([x(base_lo), top - 4, x(base_hi), img.height], fill=(220, 220, 220))
    for i, ((name, v, _), (a, b)) in enumerate(zip(values, ends)):
        y = top + i * row_h + row_h // 2
        d.text((5, y - 6), name, fill="black")
        d.line([x(a), y, x(b), y], fill="black", width=2)
        color = (120, 120, 120) if i == 0 else (70, 110, 200)
        d.ellipse([x(v) - 4, y - 4, x(v) + 4, y + 4], fill=color)
        d.text((x(b) + 6, y - 6), f"{v:.3f}", fill="black")
    return img


def load_scores(path: Path) -> dict:
    return json.loads(path.read_text())
