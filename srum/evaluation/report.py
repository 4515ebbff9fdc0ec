"""What an evaluation leaves behind: `scores.json` and `report.html` (best and worst images per category)."""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from srum.utils.io import atomic_write_json, atomic_write_text


def category_scores(records: list[dict]) -> dict[str, float]:
    """Mean score per category, in first-seen category order."""
    sums: dict[str, list[float]] = defaultdict(list)
    for r in records:
        sums[r["category"]].append(r["score"])
    return {c: sum(v) / len(v) for c, v in sums.items()}


def write_scores(out: Path, benchmark: str, split: str, checkpoint: str, records: list[dict],
                 extra: dict | None = None) -> dict:
    """`scores.json`: per-category means, their mean ("overall"), image count, and per-image records."""
    cats = category_scores(records)
    summary = {"benchmark": benchmark, "split": split, "checkpoint": checkpoint, "categories": cats,
               "overall": sum(cats.values()) / len(cats) if cats else 0.0, "n_images": len(records),
               **(extra or {})}
    atomic_write_json(out / "scores.json", summary)
    atomic_write_json(out / "images.json", records)
    return summary


def write_report(out: Path, summary: dict, records: list[dict], per_side: int = 6) -> Path:
    """A page with the score table and, per category, the best and worst images with their prompts and scores."""
    rows = "".join(f"<tr><td>{html.escape(c)}</td><td>{s:.3f}</td></tr>" for c, s in summary["categories"].items())
    sections = []
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_cat[r["category"]].append(r)
    for cat, recs in by_cat.items():
        ranked = sorted(recs, key=lambda r: r["score"])
        for title, picks in (("worst", ranked[:per_side]), ("best", ranked[::-1][:per_side])):
            cells = "".join(
                f'<figure><img src="{html.escape(r["file"])}" width="128" style="image-rendering:pixelated">'
                f'<figcaption>{r["score"]:.2f} · {html.escape(r["prompt"])}</figcaption></figure>' for r in picks)
            sections.append(f"<h3>{html.escape(cat)}: {title}</h3><div class='grid'>{cells}</div>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>srum evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}} .grid{{display:flex;flex-wrap:wrap;gap:8px}}
figure{{width:140px;margin:0;font-size:11px}} table{{border-collapse:collapse}} td{{border:1px solid #ccc;padding:2px 8px}}</style>
</head><body><h1>{html.escape(summary["benchmark"])} / {html.escape(summary["split"])}</h1>
<p>checkpoint: {html.escape(summary["checkpoint"])} · images: {summary["n_images"]} · overall: {summary["overall"]:.3f}</p>
<table><tr><th>category</th><th>score</th></tr>{rows}</table>{"".join(sections)}</body></html>"""
    return atomic_write_text(out / "report.html", page)
