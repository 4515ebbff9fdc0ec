"""What an evaluation leaves behind: `scores.json`, `scores.md` and `report.html` (best and worst images per category).

Tables list T2I-CompBench's categories in the SRUM paper's column order (srum.md §4.5, alphabetical): 3d spatial,
color, complex, non-spatial, numeracy, shape, spatial, texture, overall; other categories follow in first-seen order.
Scores are stored in [0, 1] and shown ×100 in Markdown tables, the paper's scale.
"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from srum.utils.io import atomic_write_json, atomic_write_text


PAPER_ORDER: tuple[str, ...] = ("3d_spatial", "color", "complex", "non_spatial", "numeracy", "shape", "spatial",
                                 "texture")
COMPLEX_SUBSETS: tuple[str, ...] = ("complex_action", "complex_spatial")


def category_scores(records: list[dict]) -> dict[str, float]:
    """Mean score per category, in first-seen category order; records with score None (excluded) are skipped."""
    sums: dict[str, list[float]] = defaultdict(list)
    for r in records:
        scores = sums[r["category"]]  # every category gets its entry, even if all its scores are excluded
        if r["score"] is not None:
            scores.append(r["score"])
    return {c: sum(v) / len(v) if v else float("nan") for c, v in sums.items()}


def composite_scores(categories: dict[str, float]) -> tuple[dict[str, float], float]:
    """SRUM's table (srum.md §4.4): complex = mean of complex, complex_action, complex_spatial (those present);
    overall = mean of the resulting columns (the 7 base categories plus the complex composite)."""
    table = {c: v for c, v in categories.items() if c not in COMPLEX_SUBSETS}
    parts = [categories[c] for c in ("complex", *COMPLEX_SUBSETS) if c in categories]
    if parts:
        table["complex"] = sum(parts) / len(parts)
    return table, (sum(table.values()) / len(table) if table else 0.0)


def ordered(categories: dict[str, float] | list[str]) -> list[str]:
    """Category names in the paper's order, then any others in their given order."""
    names = list(categories)
    return [c for c in PAPER_ORDER if c in names] + [c for c in names if c not in PAPER_ORDER]


def markdown_table(runs: list[tuple[str, dict]], scale: float = 100.0, deltas: bool = True) -> str:
    """One row per run (name, scores.json summary); with `deltas`, rows after the first also show the difference
    to the first run per column (`+1.23`). Columns: the union of categories in paper order, then overall."""
    columns = ordered(list(dict.fromkeys(c for _, s in runs for c in s["table"])))
    header = "| run | " + " | ".join(c.replace("_", " ") for c in columns) + " | overall |"
    lines = [header, "|" + "---|" * (len(columns) + 2)]
    base = runs[0][1] if runs else None
    for i, (name, summary) in enumerate(runs):
        cells = []
        for c in [*columns, "overall"]:
            v = summary["overall"] if c == "overall" else summary["table"].get(c)
            ref = None if base is None else (base["overall"] if c == "overall" else base["table"].get(c))
            if v is None:
                cells.append("–")
            elif deltas and i > 0 and ref is not None:
                cells.append(f"{scale * v:.2f} ({scale * (v - ref):+.2f})")
            else:
                cells.append(f"{scale * v:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare_scores(paths: list[str | Path], out: Path | None = None, windows: int | None = None,
                   requirements: bool = False) -> str:
    """One Markdown table of several `scores.json` (files or their folders), deltas against the first; with
    `windows` = N, also the paired deltas per window of N prompt indices per category (window w holds the prompts an
    online run with generate.limit_per_category=N drew in round w + 1: trained against not-yet-trained prompts).
    An entry `A+B` pools the images of evaluations A and B of the same prompts (e.g. two evaluation seeds) into one
    mean per prompt, which narrows the intervals. Evaluations run with --understanding add their understanding
    accuracy, in points against the first, and those whose images the model judged itself (`--self-judge`) its
    verdict beside the judge's score. With `requirements`, also the share of each kind of requirement met
    (`srum.evaluation.requirements`; a world's judge records them)."""
    runs, records = [], []
    for entry in paths:
        label, summary, recs = _compare_entry(entry)
        runs.append((label, summary))
        records.append(recs)
    text = markdown_table(runs) + _understanding_text(runs)
    if len(runs) > 1 and all(r is not None for r in records):
        from srum.evaluation.bootstrap import paired_bootstrap

        text += "\nPaired bootstrap over prompts (overall, against the first; 2000 resamples):\n\n"
        for (name, _), rec in zip(runs[1:], records[1:]):
            b = paired_bootstrap(records[0], rec)
            text += (f"- {name}: {b['delta']:+.4f} [{b['lo']:+.4f}, {b['hi']:+.4f}] over {b['prompts']} prompts, "
                     f"P(Δ ≤ 0) = {b['p_not_better']:.3f}\n")
            for w in sorted({int(r["index"]) // windows for r in records[0]}) if windows else []:
                b = paired_bootstrap(*([r for r in rs if int(r["index"]) // windows == w] for rs in (records[0], rec)))
                text += (f"  - window {w} (prompt indices {w * windows}–{(w + 1) * windows - 1}): {b['delta']:+.4f} "
                         f"[{b['lo']:+.4f}, {b['hi']:+.4f}] over {b['prompts']} prompts\n")
    text += _self_judge_text(runs, records)
    if requirements:
        text += "\nRequirements met (%, per image; paired against the first):\n\n" + _requirements_text(runs, records)
    if out is not None:
        atomic_write_text(out, text)
    return text


def _understanding_text(runs: list[tuple[str, dict]]) -> str:
    """The understanding accuracy of the evaluations that measured it (`--understanding`), against the first: the
    judge a self-rewarding run trains with must not drift (issue 11: within 1 point of the base)."""
    if not any("understanding" in s for _, s in runs):
        return ""
    ref = runs[0][1].get("understanding")
    lines = ["", "Understanding (balanced yes/no accuracy on renders of the prompts; --understanding):", ""]
    for i, (name, s) in enumerate(runs):
        if "understanding" in s:
            acc = s["understanding"]["balanced_accuracy"]
            delta = f" ({100 * (acc - ref['balanced_accuracy']):+.1f} points)" if ref and i else ""
            lines.append(f"- {name}: {acc:.3f}{delta} over {s['understanding']['n_questions']} questions")
    return "\n".join(lines) + "\n"


def _self_judge_text(runs: list[tuple[str, dict]], records: list[list[dict] | None]) -> str:
    """The model's own judge on each evaluation's images (`--self-judge`): its mean P(yes), paired over prompts
    against the first evaluation where that one has it, and its AUROC against the judge's verdict (score = 1). A run
    whose own verdict rises while the judge's score does not has persuaded its judge rather than improved (issue
    11's reward hacking, measured at evaluation)."""
    import torch
    from torchmetrics.functional.classification import binary_auroc

    from srum.evaluation.bootstrap import paired_bootstrap

    own = [(name, [{**r, "score": r["self_judge_p_yes"], "met": (r["score"] or 0.0) >= 1.0} for r in recs])
           for (name, _), recs in zip(runs, records) if recs and all("self_judge_p_yes" in r for r in recs)]
    if not own:
        return ""
    ref = own[0][1] if own[0][0] == runs[0][0] else None
    lines = ["", "The model's own judge on these images (mean P(yes), paired against the first; AUROC against the "
             "judge's verdict score = 1; --self-judge):", ""]
    for name, recs in own:
        p_yes = torch.tensor([r["score"] for r in recs])
        met = torch.tensor([r["met"] for r in recs]).long()
        auroc = f"{float(binary_auroc(p_yes, met)):.3f}" if 0 < int(met.sum()) < len(recs) else "–"
        delta = ""
        if ref is not None and recs is not ref:
            b = paired_bootstrap(ref, recs)
            delta = f" ({b['delta']:+.4f} [{b['lo']:+.4f}, {b['hi']:+.4f}] over {b['prompts']} prompts)"
        lines.append(f"- {name}: {float(p_yes.mean()):.4f}{delta}, AUROC {auroc} over {len(recs)} images")
    return "\n".join(lines) + "\n"


def _requirements_text(runs: list[tuple[str, dict]], records: list[list[dict] | None]) -> str:
    """The requirement table, with the tags of the first evaluation's world (its kinds where it names none)."""
    from srum.evaluation.requirements import kind_tag, requirement_table
    from srum.worlds.registry import world_for

    missing = [name for (name, _), recs in zip(runs, records) if recs is None]
    if missing:
        raise FileNotFoundError(f"--requirements: {missing[0]} has no images.json (per-image verdicts)")
    world = world_for(runs[0][1].get("benchmark"))
    tag_of = getattr(world, "requirement_tag", kind_tag) if world is not None else kind_tag
    return requirement_table([(name, recs) for (name, _), recs in zip(runs, records)], tag_of)


def _compare_entry(entry: str | Path) -> tuple[str, dict, list[dict] | None]:
    """One --compare entry's label, summary and per-image records (None where images.json is absent); `A+B` pools
    the images of A and B into one summary."""
    import json

    parts = str(entry).split("+") if "+" in str(entry) and not Path(entry).exists() else [str(entry)]
    paths = _scores_paths(parts)
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"--compare {p}: no scores.json there; pass evaluation folders or their "
                                    "scores.json")
    images = [p.parent / "images.json" for p in paths]
    label = "+".join(run_label(p.parent) for p in paths)
    if len(paths) == 1:
        summary = json.loads(paths[0].read_text())
        if "table" not in summary:  # written before tables existed
            summary["table"], summary["overall"] = composite_scores(summary["categories"])
        return label, summary, json.loads(images[0].read_text()) if images[0].is_file() else None
    missing = [str(f) for f in images if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"--compare {entry}: pooling needs every part's images.json; missing "
                                f"{', '.join(missing)}")
    records = [r for f in images for r in json.loads(f.read_text())]
    categories = category_scores(records)
    table, overall = composite_scores(categories)
    parts_summaries = [json.loads(p.read_text()) for p in paths]
    pooled = {"benchmark": parts_summaries[0].get("benchmark"), "categories": categories, "table": table,
              "overall": overall, "n_images": len(records)}
    if all("understanding" in s for s in parts_summaries):  # equal yes and no counts per part: weight by questions
        und = [s["understanding"] for s in parts_summaries]
        n = sum(u["n_questions"] for u in und)
        pooled["understanding"] = {"balanced_accuracy": sum(u["balanced_accuracy"] * u["n_questions"] for u in und) / n,
                                   "n_questions": n}
    return label, pooled, records


def run_label(folder: str | Path) -> str:
    """A folder's name, as `run/roundN` where it is a round's `eval` or `export` folder."""
    folder = Path(folder)
    if folder.name in ("eval", "export") and folder.parent.name.startswith("round"):
        return f"{folder.parent.parent.name}/{folder.parent.name}"
    return folder.name or str(folder)


def _scores_paths(paths: list[str | Path]) -> list[Path]:
    return [Path(p) / "scores.json" if Path(p).is_dir() else Path(p) for p in paths]


SUMMARY_FIELDS = ("benchmark", "split", "checkpoint", "categories", "table", "overall", "n_images", "n_excluded",
                  "parse_failures")  # what write_scores computes; everything else in a summary is the caller's


def summary_extras(summary: dict) -> dict:
    """A scores.json summary's caller-given keys (seed, judge, understanding, …), to carry over a re-scoring."""
    return {k: v for k, v in summary.items() if k not in SUMMARY_FIELDS}


def write_scores(out: Path, benchmark: str, split: str, checkpoint: str, records: list[dict],
                 extra: dict | None = None) -> dict:
    """`scores.json`: per-category means, their mean ("overall"), image count, and per-image records."""
    cats = category_scores(records)
    table, overall = composite_scores(cats)  # SRUM's complex composite (srum.md §4.4); a no-op without subsets
    summary = {"benchmark": benchmark, "split": split, "checkpoint": checkpoint, "categories": cats, "table": table,
               "overall": overall, "n_images": len(records),
               "n_excluded": sum(r["score"] is None for r in records),
               "parse_failures": sum(bool(r.get("parse_failed")) for r in records), **(extra or {})}
    atomic_write_json(out / "scores.json", summary)
    atomic_write_json(out / "images.json", records)
    atomic_write_text(out / "scores.md", markdown_table([(run_label(checkpoint), summary)]))
    return summary


def _reasons(record: dict) -> str:
    """A judge's per-requirement verdicts (✓ / ✗) and what it saw, where it gives them (a world's exact judge)."""
    if not record.get("requirements"):
        return ""
    items = "".join(f"<li>{'✓' if ok else '✗'} {html.escape(text)}</li>" for text, ok in record["requirements"])
    seen = ", ".join(record.get("seen", [])) or "nothing"
    return f"<ul class='why'>{items}</ul><span class='seen'>saw: {html.escape(seen)}</span>"


def write_report(out: Path, summary: dict, records: list[dict], per_side: int = 6) -> Path:
    """A page with the score table and, per category, the best and worst images with their prompts and scores."""
    table = summary.get("table") or summary["categories"]
    rows = "".join(f"<tr><td>{html.escape(c.replace('_', ' '))}</td><td>{100 * table[c]:.2f}</td></tr>"
                   for c in ordered(table))
    rows += f"<tr><td><b>overall</b></td><td><b>{100 * summary['overall']:.2f}</b></td></tr>"
    sections = []
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_cat[r["category"]].append(r)
    for cat in ordered(list(by_cat)):
        recs = by_cat[cat]
        ranked = sorted((r for r in recs if r["score"] is not None), key=lambda r: r["score"])
        for title, picks in (("worst", ranked[:per_side]), ("best", ranked[::-1][:per_side])):
            cells = "".join(
                f'<figure><img src="{html.escape(r["file"])}" width="128" style="image-rendering:pixelated">'
                f'<figcaption>{r["score"]:.2f} · {html.escape(r["prompt"])}{_reasons(r)}</figcaption></figure>'
                for r in picks)
            sections.append(f"<h3>{html.escape(cat)}: {title}</h3><div class='grid'>{cells}</div>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>srum evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}} .grid{{display:flex;flex-wrap:wrap;gap:8px}}
figure{{width:140px;margin:0;font-size:11px}} ul.why{{margin:2px 0;padding-left:1em}} .seen{{color:#777}} table{{border-collapse:collapse}} td{{border:1px solid #ccc;padding:2px 8px}}</style>
</head><body><h1>{html.escape(run_label(summary["checkpoint"]))}: {html.escape(summary["benchmark"])} / {html.escape(summary["split"])}</h1>
<p>checkpoint: {html.escape(summary["checkpoint"])} · images: {summary["n_images"]} · scores ×100, the paper's scale
and column order; under each image, the judge's own score for it</p>
<table><tr><th>category</th><th>score</th></tr>{rows}</table>{"".join(sections)}</body></html>"""
    return atomic_write_text(out / "report.html", page)
