"""Ablations of one base recipe: each variant is a list of `key=value` overrides, run and evaluated alike.

Every variant keeps the recipe's seeds and sample budget, so differences come from the switched part
only. A variant is finished when its evaluation `scores.json` exists; rerunning skips it.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from srum.evaluation.bootstrap import paired_bootstrap
from srum.evaluation.report import ordered
from srum.utils.artifacts import read_json
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
    "both_experts": ["train.freeze_und=false"],  # official SRUM trains the judge too: it may drift (understanding)
    "self_distill": ["reward.source=uniform"],  # reward ≡ 1: SFT on the model's own samples
    "oracle": ["reward.source=oracle"],  # the world's exact judge instead of the model's: the ceiling of the reward
}


@dataclass(frozen=True)
class Variant:
    """One training run of a variant: the recipe's own training seeds, or one reseeding of them. A run of several
    rounds is judged by its last."""
    name: str
    overrides: tuple[str, ...]
    out_dir: Path
    rounds: int = 1

    @property
    def scores(self) -> Path:
        """The last round's own evaluation (the first evaluation seed)."""
        return self.out_dir / f"round{self.rounds}" / "eval" / "scores.json"

    @property
    def export(self) -> Path:
        return self.out_dir / f"round{self.rounds}" / "export"

    def extra_eval_dir(self, seed: int) -> Path:
        """Where the export is evaluated again with another seed, to measure the run's evaluation noise."""
        return self.out_dir / f"eval-seed{seed}"

    def test_eval_dir(self, seed: int) -> Path:
        """Where the export is evaluated on the held-out test split."""
        return self.out_dir / f"test-seed{seed}"

    @property
    def done(self) -> bool:
        return self.scores.is_file()


def expand(names: list[str], out_root: Path, extra: list[str] = (),
           reseeds: list[tuple[int, int]] = (), rounds: int = 1) -> list[Variant]:
    """The runs for `names` (validated against VARIANTS), each in `out_root/<name>` with the extra overrides, then
    each again with every (train.seed, train.data_seed) of `reseeds` in `out_root/<name>-seed<seed>`: the training
    noise (init noise, sample order, timesteps) a difference must beat, beside the evaluation seeds' noise. The
    recipe's own seeds keep the plain folder, so adding reseeds to a finished ablation reuses its runs."""
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown ablation variant(s) {unknown}; expected some of {list(VARIANTS)}")
    runs = []
    for n in names:
        for seeds in [None, *reseeds]:
            folder = out_root / (n if seeds is None else f"{n}-seed{seeds[0]}")
            again = [] if seeds is None else [f"train.seed={seeds[0]}", f"train.data_seed={seeds[1]}"]
            runs.append(Variant(n, (*VARIANTS[n], *extra, *again, f"output.dir={folder}"), folder, rounds))
    return runs


def shared_samples(variants: list[Variant]) -> Path | None:
    """A finished round-1 generate folder of one of `variants`: the same model, prompts and seeds draw the same
    images for every variant (no variant changes `generate.*`), so later variants link it instead of redrawing
    (later rounds draw with each variant's own model)."""
    for v in variants:
        folder = v.out_dir / "round1" / "generate"
        if (folder / "manifest.json").is_file():
            return folder
    return None


@dataclass(frozen=True)
class Evaluated:
    """One row of the table: a variant's evaluations (`scores[t][e]`, the `scores.json` summary of training run t at
    evaluation seed e), the per-image records of all of them pooled (None where an `images.json` is missing), and
    the mean wall time of its runs in minutes where it is known."""
    name: str
    scores: list[list[dict]]
    records: list[dict] | None
    minutes: float | None = None


PAIRED = "(paired 95%)"


def versus_label(name: str) -> str:
    """The column of the paired comparisons against run `name`."""
    return f"vs {name} {PAIRED}"


def table_rows(runs: list[Evaluated], control: str = "self_distill", test: list[Evaluated] | None = None,
               understanding: list[float | None] | None = None) -> tuple[list[str], list[list]]:
    """(header, rows): one row per variant (the base model first): the mean over its training runs and evaluation
    seeds per category and overall; the spread (max − min) of the overall score over evaluation seeds and over
    training seeds (each of the mean over the other; None where there is one); the share of the base's error it
    removes, (score − base) / (1 − base); the paired bootstrap over prompts (all its images pooled per prompt)
    against the base and, where it is among the runs, against `control`, the reward-free run a difference must
    beat before it is a reward effect; with `test` (the same runs evaluated on the held-out split, in the same
    order), the test score and its paired comparison with the base, since a gain chosen on val must hold there
    too; with `understanding` (one per row), the understanding accuracy a self-rewarding run must keep, the judge
    being the model; and the mean wall time of its runs in minutes."""
    categories = ordered(list(runs[0].scores[0][0]["categories"]))  # T2I-CompBench's columns in the paper's order
    against = [runs[0]] + [r for r in runs[1:] if r.name == control]
    if test is not None and [r.name for r in test] != [r.name for r in runs]:
        raise ValueError(f"test rows {[r.name for r in test]} do not match the val rows {[r.name for r in runs]}")

    def spread(xs: list[float]) -> float | None:
        return max(xs) - min(xs) if len(xs) > 1 else None

    base = _overall(runs[0])
    rows = []
    for i, run in enumerate(runs):
        flat = [s for t in run.scores for s in t]
        overall = _overall(run)
        by_eval = [_mean([t[e]["overall"] for t in run.scores]) for e in range(len(run.scores[0]))]
        by_train = [_mean([s["overall"] for s in t]) for t in run.scores]
        held_out = [] if test is None else [_overall(test[i]), _paired(test[0], test[i])]
        rows.append([run.name, *[_mean([s["categories"][c] for s in flat]) for c in categories], overall,
                     spread(by_eval), spread(by_train), (overall - base) / (1 - base) if i else None,
                     *[_paired(ref, run) if i else None for ref in against], *held_out,
                     *([] if understanding is None else [understanding[i]]), run.minutes])
    header = ["run", *categories, "overall", "evaluation-seed spread", "training-seed spread", "error removed",
              *[versus_label(ref.name) for ref in against],
              *([] if test is None else ["test", "test " + versus_label(runs[0].name)]),
              *([] if understanding is None else ["understanding"]), "minutes"]
    return header, rows


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _overall(run: Evaluated) -> float:
    """The overall score averaged over every training run and evaluation seed."""
    return _mean([s["overall"] for t in run.scores for s in t])


def _paired(ref: Evaluated, run: Evaluated) -> dict | None:
    """`run` against `ref`, paired over prompts; None against itself or where per-image records are missing."""
    if run is ref or ref.records is None or run.records is None:
        return None
    return paired_bootstrap(ref.records, run.records)


def write_tables(out: Path, header: list[str], rows: list[list], control: str = "self_distill") -> None:
    """`ablation.md`, `ablation.csv` (a paired comparison as its delta, low and high columns) and `ablation.png`
    (each run's paired difference from the base, the control's interval shaded)."""

    def fmt(v) -> str:
        if isinstance(v, dict):
            return f"{v['delta']:+.3f} [{v['lo']:+.3f}, {v['hi']:+.3f}]"
        return "" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    atomic_write_text(out / "ablation.md", "\n".join(md) + "\n")
    paired = [j for j, h in enumerate(header) if h.endswith(PAIRED)]
    flat_header = [x for j, h in enumerate(header) for x in ([h, f"{h} lo", f"{h} hi"] if j in paired else [h])]

    def flat(row: list) -> list[str]:
        return [x for j, v in enumerate(row) for x in (
            [fmt(v and v[k]) for k in ("delta", "lo", "hi")] if j in paired else [fmt(v)])]

    buf = io.StringIO()
    csv.writer(buf).writerows([flat_header, *[flat(row) for row in rows]])
    atomic_write_text(out / "ablation.csv", buf.getvalue())
    versus = header.index(versus_label(rows[0][0]))
    band = next((row[versus] for row in rows if row[0] == control), None)
    with atomic_path(out / "ablation.png") as tmp:
        interval_chart([(row[0], row[versus]) for row in rows[1:]], band).save(tmp, format="PNG")


def interval_chart(deltas: list[tuple[str, dict | None]], band: dict | None = None, width: int = 640) -> Image.Image:
    """Each run's paired difference from the base (overall, per prompt) as a dot with its 95% interval, on an axis
    zoomed to the values, with a line at zero; `band`, the reward-free control's interval, is shaded across all rows,
    so a run whose interval overlaps it is not distinguishable from self-distillation. A run without a paired
    comparison (an evaluation written without images.json) keeps its row, empty."""
    row_h, left, right, top = 24, 130, 30, 24
    img = Image.new("RGB", (width, top + row_h * len(deltas) + 24), "white")
    d = ImageDraw.Draw(img)
    bottom = img.height - 18
    d.text((5, bottom + 4), "overall score against the base, paired over prompts, 95% interval"
           + ("; shaded: the reward-free control's" if band else ""), fill=(90, 90, 90))
    ends = [0.0] + [v[k] for v in [band, *(v for _, v in deltas)] if v for k in ("lo", "hi")]
    lo = math.floor(min(ends) * 100 - 1) / 100
    hi = math.ceil(max(ends) * 100 + 1) / 100
    x = lambda v: left + (v - lo) / (hi - lo) * (width - left - right)  # noqa: E731
    step = 0.01 * math.ceil((hi - lo) / 0.07)  # at most about eight gridlines, on whole hundredths
    for t in [lo + i * step for i in range(int(round((hi - lo) / step)) + 1)]:
        d.line([x(t), top - 4, x(t), bottom], fill=(235, 235, 235))
        d.text((x(t) - 12, 4), f"{round(t, 4) or 0.0:+.2f}", fill="black")  # no "-0.00"
    if band:
        d.rectangle([x(band["lo"]), top - 4, x(band["hi"]), bottom], fill=(220, 220, 220))
    d.line([x(0.0), top - 4, x(0.0), bottom], fill=(120, 120, 120), width=1)
    for i, (name, v) in enumerate(deltas):
        y = top + i * row_h + row_h // 2
        d.text((5, y - 6), name, fill="black")
        if v:
            d.line([x(v["lo"]), y, x(v["hi"]), y], fill="black", width=2)
            d.ellipse([x(v["delta"]) - 4, y - 4, x(v["delta"]) + 4, y + 4], fill=(70, 110, 200))
            d.text((x(v["hi"]) + 6, y - 6), f"{v['delta']:+.3f}", fill="black")
    return img


def load_evaluated(name: str, scores: list[list[Path]], minutes: float | None = None) -> Evaluated:
    """A row from its evaluations' `scores.json` files (`scores[t][e]`: training run t, evaluation seed e); the
    `images.json` beside each, pooled, give the paired comparisons (an evaluation written without one leaves them
    out). A damaged file stops with one line naming it."""
    fix = "delete the evaluation folder and rerun the ablation: it evaluates again what is missing"
    summaries = [[read_json(p, fix) for p in run] for run in scores]
    images = [p.parent / "images.json" for run in scores for p in run]
    records = [r for f in images for r in read_json(f, fix)] if all(f.is_file() for f in images) else None
    return Evaluated(name, summaries, records, minutes)
