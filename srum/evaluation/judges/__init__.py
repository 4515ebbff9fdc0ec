"""Scorers of (image, prompt) pairs behind one signature: images, prompts → scores in [0, 1].

Judges: `vlm` (SRUM's protocol, srum.md §4: a Qwen2.5-VL rates 0-100, JSON answer), `official` (T2I-CompBench's
metric families per category: BLIP-VQA, CLIPScore, an open-vocabulary detector), and a prompt world's exact judge
under the world's name (`srum.worlds.interface.World.eval_judge`).
Weights come only from local folders (`paths`); nothing is downloaded. Boxes are `box_xyxy_px` in image pixels.
"""

from __future__ import annotations

from pathlib import Path

from srum.evaluation.judges.base import Judge, judge_batch, local_model_dir
from srum.evaluation.judges.official import OfficialJudge
from srum.evaluation.judges.vlm import VLMJudge

__all__ = ["JUDGES", "Judge", "build_judge", "judge_batch", "parse_judge_paths"]

JUDGES = {"vlm": VLMJudge, "official": OfficialJudge}  # names kept equal to srum.config.EVAL_JUDGES by a test


def parse_judge_paths(spec: str | None) -> dict[str, str]:
    """"blip=DIR,clip=DIR,owl=DIR,vlm=DIR" → {"blip": "DIR", ...}."""
    out: dict[str, str] = {}
    for item in filter(None, (spec or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"--judge-paths item {item!r}: expected NAME=DIR (names: vlm, blip, clip, owl)")
        out[key.strip()] = value.strip()
    return out


def build_judge(name: str, device: str = "cpu", paths: dict[str, str | Path] | None = None, **options) -> Judge:
    """The judge `name`; `vlm` reads paths["vlm"], `official` paths["blip" | "clip" | "owl"] (when needed); a world's
    name gives its exact judge."""
    from srum.worlds.registry import WORLDS, world_for

    world = world_for(name)
    if world is not None:
        return world.eval_judge()
    if name not in JUDGES:
        raise ValueError(f"unknown judge {name!r}; expected one of {sorted(JUDGES) + sorted(WORLDS)}")
    paths = dict(paths or {})
    if name == "vlm":
        return VLMJudge(local_model_dir(paths, "vlm", name), device=device, **options)
    return OfficialJudge(paths, device=device, **options)
