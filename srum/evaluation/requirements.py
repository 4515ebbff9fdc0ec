"""Which requirements an evaluation meets: the share met per requirement tag, paired against the first evaluation.

A score averages everything a prompt asks for, so a change that helps one thing and hurts another, or a model that
cannot draw one shape at all, hides in it. A world's evaluation judge records each image's requirements as
`["kind: text", met]`; the tag is the kind, or a finer name from the world's optional `requirement_tag(text)` hook
(ShapesWorld: the object's shape, the relation's family). Deltas are paired over prompts as `srum.evaluation.bootstrap`
pairs scores: per prompt, the share of its tagged requirements met over its images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def kind_tag(requirement: str) -> str:
    """The generic tag: the requirement's kind, the text before the first colon."""
    return requirement.split(":", 1)[0].strip()


def tagged_records(records: Sequence[dict], tag_of: Callable[[str], str]) -> dict[str, list[dict]]:
    """Per tag, one record per image that has the tag: its category, prompt index and share of those requirements
    met (the shape `paired_bootstrap` reads)."""
    out: dict[str, list[dict]] = {}
    for r in records:
        per_tag: dict[str, list[bool]] = {}
        for text, met in r.get("requirements") or []:
            per_tag.setdefault(tag_of(text), []).append(bool(met))
        for tag, verdicts in per_tag.items():
            out.setdefault(tag, []).append(
                {"category": r["category"], "index": r["index"], "score": sum(verdicts) / len(verdicts)})
    return out


def requirement_table(runs: Sequence[tuple[str, Sequence[dict]]], tag_of: Callable[[str], str] = kind_tag) -> str:
    """A Markdown table: per tag, how many of the first run's images were judged on it and the share each run met
    (×100; an image's requirements of the tag weigh alike), later runs with their paired delta against the first and
    its 95% interval."""
    from srum.evaluation.bootstrap import paired_bootstrap

    for name, records in runs:
        if not any(r.get("requirements") for r in records):
            raise ValueError(f"--requirements: {name} has no per-requirement verdicts (its judge records none; "
                             "a world's oracle does)")
    tagged = [tagged_records(records, tag_of) for _, records in runs]
    lines = ["| requirement | images | " + " | ".join(name for name, _ in runs) + " |",
             "|---|---|" + "---|" * len(runs)]
    for tag in sorted(tagged[0]):
        base = tagged[0][tag]
        cells = [f"{100 * _share(base):.1f}"]
        for t in tagged[1:]:
            other = t.get(tag, [])
            if not other:
                cells.append("–")
                continue
            b = paired_bootstrap(base, other)
            cells.append(f"{100 * _share(other):.1f} ({100 * b['delta']:+.1f} [{100 * b['lo']:+.1f}, "
                         f"{100 * b['hi']:+.1f}])")
        lines.append(f"| {tag} | {len(base)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _share(records: Sequence[dict]) -> float:
    """Mean over images of each image's share met (equal images per prompt make it the paired delta's scale)."""
    return sum(r["score"] for r in records) / len(records)
