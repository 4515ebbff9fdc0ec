"""Evaluate a checkpoint's generation: prompts → images (fixed seeds, batched) → judge → records.

Image k of the prompt at index i of category c always gets the same seed, so two checkpoints
evaluated with the same `seed` draw from the same noise and their scores compare like for like.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from srum.evaluation.benchmarks import PromptItem
from srum.evaluation.judges import Judge, judge_batch
from srum.models.interface import Guide, UnifiedModel
from srum.utils.artifacts import read_image
from srum.utils.dist import DistInfo, all_gather_objects
from srum.utils.io import inside

logger = logging.getLogger(__name__)


def image_seed(base: int, category_index: int, item_index: int, k: int, images_per_prompt: int) -> int:
    return base + (category_index * 100_000 + item_index) * images_per_prompt + k


def generate_and_judge(
    model: UnifiedModel,
    items: Sequence[PromptItem],
    judge: Judge,
    out: Path,
    images_per_prompt: int = 1,
    seed: int = 0,
    size: int = 64,
    batch_size: int = 16,
    think: bool = False,
    progress: bool = True,
    dist: DistInfo | None = None,
    guide_for: Callable[[list[str]], Guide] | None = None,
) -> list[dict]:
    """Draw, save (`out/images/<category>/<index>_<k>.png`) and score every image; one record per image.
    `guide_for(prompts)`, when given, steers the sampler for each batch (`srum.guidance`).

    With several ranks (`dist`), batches are dealt round-robin and every rank returns all records, in the order
    of a one-rank run: seeds belong to images, not ranks, so the result does not depend on the world size.
    """
    categories = list(dict.fromkeys(it.category for it in items))
    jobs = [(it, k, image_seed(seed, categories.index(it.category), it.index, k, images_per_prompt))
            for it in items for k in range(images_per_prompt)]
    starts = list(range(0, len(jobs), batch_size))
    if dist is not None:
        starts = dist.shard(starts)
    main = dist is None or dist.is_main
    records = []
    for start in tqdm(starts, desc="generate", disable=not (progress and main), dynamic_ncols=True):
        chunk = jobs[start:start + batch_size]
        prompts = [it.prompt for it, _, _ in chunk]
        result = model.sample_images(prompts, [s for _, _, s in chunk], size, size, think=think,
                                     guide=guide_for(prompts) if guide_for is not None else None)
        judged = judge_batch(judge, result.images, prompts, [it.category for it, _, _ in chunk])
        for n, ((it, k, s), image, details) in enumerate(zip(chunk, result.images, judged)):
            rel = Path("images") / it.category / f"{it.index:05d}_{k}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            image.save(out / rel)
            score = details.pop("score")
            records.append((start + n, {"category": it.category, "index": it.index, "k": k, "seed": s,
                                        "prompt": it.prompt, "score": None if score is None else float(score),
                                        "file": str(rel), **details}))
    if dist is not None and dist.world_size > 1:
        records = [r for part in all_gather_objects(records, dist) for r in part]
    return [record for _, record in sorted(records, key=lambda pair: pair[0])]


def rejudge_records(records: list[dict], out: Path, judge: Judge, batch_size: int = 64) -> list[dict]:
    """The records of an earlier evaluation in `out`, judged again from their saved images (after a judge change):
    each keeps its prompt, seed and file, and gets the new score and details."""
    fresh = []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        images = [read_image(inside(out, r["file"], out / "images.json")) for r in chunk]
        for r, details in zip(chunk, judge_batch(judge, images, [r["prompt"] for r in chunk],
                                                 [r["category"] for r in chunk])):
            score = details.pop("score")
            keep = {k: r[k] for k in ("category", "index", "k", "seed", "prompt", "file") if k in r}
            fresh.append({**keep, "score": None if score is None else float(score), **details})
    return fresh


# ---------------------------------------------------------------------------------------------------- T2I-CompBench files


def compbench_sample_name(prompt: str, question_id: int) -> str:
    """T2I-CompBench's image name `<prompt>_<six-digit index>.png`; their scripts read the prompt back as the text
    before the first "_" and sort by the index, so "_" and "/" in a prompt become spaces."""
    safe = re.sub(r"[_/\\]", " ", prompt)
    return f"{safe}_{question_id:06d}.png"


def write_compbench_samples(out: Path, records: list[dict]) -> list[dict]:
    """Copy every image to `out/<category>/samples/<prompt>_<index>.png`, T2I-CompBench's layout.

    The index (`question_id`, added to each record with `compbench_file`) runs 0, 1, ... over all images of a
    category in record order (prompt order, then k), as their scripts number images; their `vqa_result.json`
    question ids are this index.
    """
    counters: dict[str, int] = {}
    for r in records:
        qid = counters.get(r["category"], 0)
        counters[r["category"]] = qid + 1
        rel = Path(r["category"]) / "samples" / compbench_sample_name(r["prompt"], qid)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / r["file"], out / rel)
        r["question_id"], r["compbench_file"] = qid, str(rel)
    return records


def _result_files(path: Path, categories: list[str]) -> dict[str, Path]:
    """{category: vqa_result.json} from a file (its category is a folder name on its path) or a folder tree."""
    if path.is_file():
        cat = next((part for part in reversed(path.parts) if part in categories), None)
        if cat is None:
            raise ValueError(f"{path}: no category folder ({categories}) on its path; put it under <category>/")
        return {cat: path}
    found: dict[str, Path] = {}
    for cat in categories:
        # Final results only: BLIP-VQA's per-noun-phrase runs leave annotation<i>_blip/VQA/result/vqa_result.json.
        hits = [p for p in sorted((path / cat).rglob("vqa_result.json")) if "VQA" not in p.parts]
        if len(hits) > 1:
            raise ValueError(f"{path / cat}: several results {[str(h) for h in hits]}; pass one file instead")
        if hits:
            found[cat] = hits[0]
    if not found:
        raise FileNotFoundError(f"{path}: no <category>/**/vqa_result.json for categories {categories}")
    return found


def import_compbench_results(records: list[dict], path: str | Path) -> int:
    """Replace record scores by T2I-CompBench's `vqa_result.json` answers ([{question_id, answer}], the answer a
    number or numeric string in [0, 1]); returns how many records were updated. The previous score is kept in
    `score_before_import`, the source in `score_source`. Records need `question_id` (write_compbench_samples)."""
    categories = list(dict.fromkeys(r["category"] for r in records))
    by_key = {(r["category"], r.get("question_id")): r for r in records}
    n = 0
    for cat, file in _result_files(Path(path), categories).items():
        rows = json.loads(file.read_text())
        for row in rows:
            r = by_key.get((cat, int(row["question_id"])))
            if r is None:
                raise ValueError(f"{file}: question_id {row['question_id']} has no image of category {cat!r} here "
                                 f"(were the samples written by this evaluation?)")
            value = row["answer"] if "answer" in row else row["score"]
            r.setdefault("score_before_import", r["score"])
            r["score"], r["score_source"] = float(value), str(file)
            n += 1
        logger.info("import=%s category=%s results=%d", file, cat, len(rows))
    return n
