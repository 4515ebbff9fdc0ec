"""Stage 2b: the self-judge. The model being trained scores its own images, globally and per region, in [-1, 1].

Implements srum.md §1.4 with two modes (`JudgeConfig.mode`): `text` generates an answer and parses "Score:" lines as
the official pipeline does (retries, a counted fallback); `logits` reads the distribution over single-token answers
in one forward and takes the expected score, so it never fails to parse. Questions are data (`JudgeTemplates`).
A region is shown as a crop of its box (plus a margin), never as box coordinates in text alone: the official
pipeline gave the VLM boxes in pixels of an image size it was never told (§5.5).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image

from srum.config import JudgeConfig, JudgeMode
from srum.models.interface import UnifiedModel
from srum.rewards.regions import Region

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------- templates


@dataclass
class JudgeTemplates:
    """The questions the judge asks, and how answers map to scores.

    Questions are `str.format` templates; every question gets the fields `prompt` (the image's prompt), `object`
    (what a region is checked against: the prompt itself, or one of `object_phrases(prompt)`) and `box` (the
    region's box as fractions of the image's width and height); a template uses the ones it needs.
    """

    global_question: str  # the global layout question, field {prompt}
    region_question: str  # asked of a region's crop; fields {prompt}, {object}, {box}
    answers: dict[str, float] = field(default_factory=dict)  # single-token answer → score (logits mode)
    sample_question: str | None = None  # whole-image question for judge.sample_level_only (ablation, §1.4.3)
    think_instruction: str = ""  # text mode with judge.think: put before the question
    # Splits a prompt into the object phrases a region is checked against; the region scores the max over them.
    # None: the region question is asked once, with object = the whole prompt (official).
    object_phrases: Callable[[str], list[str]] | None = None


_THINK = (
    "Before answering, reason step by step inside <think> </think> tags; "
    "after the closing tag, write only the final answer in the requested format.\n\n"
)

# Paraphrase of the official regional instruction (srum.md §1.4.1), for one region shown as a crop: the official
# prompt listed up to 10 boxes in one question; here each question holds one crop, so one "Region ID: 1" block.
_OFFICIAL_REGION = """You are an expert image analyst. An image was generated from this prompt:
"{prompt}"
You are shown one region of that image, cropped from the box {box} (left, top, right, bottom as fractions of the \
image's width and height).

For this region:
1. Name the main object it shows.
2. Give a single score from -1.0 to 1.0 that covers both how relevant the region is to the prompt and its visual \
quality.

Scale:
- 1.0: perfect; exactly what the prompt asks for, without flaws.
- 0.5 to 0.9: very good; relevant and well rendered, minor issues at most.
- -0.4 to 0.4: neutral; e.g. a background element the prompt does not mention but that does no harm. 0.0 is \
perfectly neutral.
- -0.9 to -0.5: bad; distracting, or badly flawed or malformed.
- -1.0: contradicts the prompt.
Be strict.

Answer in exactly this format:
Region ID: 1
Identified Object: <name of the main object>
Score: <number>

Example:
Region ID: 1
Identified Object: blue ceramic vase
Score: 0.7
"""

# Paraphrase of the official global-layout instruction (srum.md §1.4.2).
_OFFICIAL_GLOBAL = """You are an expert in image composition. An image was generated from this prompt:
"{prompt}"
Judge only the global layout: how well the arrangement and composition of the image match the spatial intent of \
the prompt (where things are and how they are placed relative to each other). Ignore small details.

Give a single score from -1.0 to 1.0:
- 1.0: the layout matches the prompt's spatial intent perfectly.
- 0.5 to 0.9: a good layout with small deviations.
- -0.4 to 0.4: neutral. If the prompt says nothing about placement or arrangement, give a neutral score.
- -0.9 to -0.5: the layout clearly departs from the prompt.
- -1.0: the layout contradicts the prompt.

Answer in exactly this format:
Score: <number>
Reason: <one short sentence>

Examples:
Prompt "a cat on the left of a dog", the cat is on the left:
Score: 0.9
Reason: the cat is on the left of the dog, as asked.
Prompt "a cat on the left of a dog", the two are swapped:
Score: -0.8
Reason: the cat is on the right of the dog, the opposite of the prompt.
Prompt "a red apple":
Score: 0.0
Reason: the prompt asks for no particular arrangement.
"""

# Paraphrase of the official sample-level ablation instruction (srum.md §1.4.3).
_OFFICIAL_SAMPLE = """You are an expert image analyst. An image was generated from this prompt:
"{prompt}"
Judge the whole image: how well it matches the prompt and how good it looks, with a single score from -1.0 \
(contradicts the prompt or badly flawed) through 0.0 (neutral) to 1.0 (perfect). Be strict.

Answer in exactly this format:
Overall Impression: <one short sentence>
Score: <number>
Reason: <one short sentence>
"""

OFFICIAL_TEMPLATES = JudgeTemplates(
    global_question=_OFFICIAL_GLOBAL,
    region_question=_OFFICIAL_REGION,
    sample_question=_OFFICIAL_SAMPLE,
    think_instruction=_THINK,
)

# Logits mode for BAGEL-7B: one digit, mapped linearly 0 → -1, 9 → +1 (no digit is exactly neutral: 4 and 5 give
# ∓1/9, and a neutral judge spreads its mass over both).
_DIGIT_VALUES = {str(k): -1.0 + 2.0 * k / 9.0 for k in range(10)}
DIGIT_TEMPLATES = JudgeTemplates(
    global_question=(
        'An image was generated from the prompt "{prompt}". How well does its layout (where the objects are and how '
        "they are arranged) match the prompt? If the prompt says nothing about arrangement, answer 4 or 5. Answer "
        "with a single digit from 0 (contradicts the prompt) to 9 (perfect match)."
    ),
    region_question=(
        'An image was generated from the prompt "{prompt}". This is one region of it, cropped from the box {box}. '
        "How relevant to the prompt and how well made is it? Answer with a single digit: 0 contradicts the prompt "
        "or is badly malformed, 4 or 5 is a harmless background element, 9 is perfect."
    ),
    answers=_DIGIT_VALUES,
    sample_question=(
        'An image was generated from the prompt "{prompt}". How well does the whole image match the prompt, and how '
        "good does it look? Answer with a single digit from 0 (contradicts the prompt) to 9 (perfect)."
    ),
)


# Built-in question sets; a prompt world adds its own under its name (srum.worlds.interface.World.judge_templates).
# Names must match JudgeConfig's check in srum/config.py (a test keeps them equal).
TEMPLATES: dict[str, JudgeTemplates] = {"official": OFFICIAL_TEMPLATES, "digits": DIGIT_TEMPLATES}


def templates_for(name: str | None, mode: JudgeMode = JudgeMode.text) -> JudgeTemplates:
    """The question set `name` (judge.templates): built in, or a world's; None picks the mode's default, as
    `JudgeConfig.template_set` does (prefer `templates_for(cfg.judge.template_set)`)."""
    from srum.worlds.registry import WORLDS, world_for

    if name is None:
        name = JudgeConfig(mode=mode).template_set
    world = world_for(name)
    if world is not None:
        return world.judge_templates()
    if name not in TEMPLATES:
        raise ValueError(f"judge.templates={name!r}; expected one of {sorted(TEMPLATES) + sorted(WORLDS)}")
    return TEMPLATES[name]


# ---------------------------------------------------------------------------------------------------- parsing

# A signed decimal after "Score:" (markdown bold around the label tolerated): "Score: -0.5", "**Score:** .7".
_SCORE = re.compile(r"Score\s*:\s*\**\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))", re.IGNORECASE)
_REGION_ID = re.compile(r"Region\s*ID\s*:\s*\**\s*(\d+)", re.IGNORECASE)
_THINK_END = "</think>"


def final_answer(text: str) -> str:
    """The text after the last closing think tag (the whole text if there is none), as official parses."""
    return text.rsplit(_THINK_END, 1)[-1]


def parse_global_score(text: str) -> float | None:
    """The first "Score:" number of the final answer, or None."""
    m = _SCORE.search(final_answer(text))
    return float(m.group(1)) if m else None


def parse_region_scores(text: str) -> dict[int, float]:
    """Region ID → score, as official: split the final answer on blank lines; a block counts only if it has a
    "Region ID: n"; its first "Score:" number is the score. Blocks without a score are dropped (a later block with
    the same ID does not overwrite an earlier one)."""
    out: dict[int, float] = {}
    for block in re.split(r"\n\s*\n", final_answer(text)):
        rid, score = _REGION_ID.search(block), _SCORE.search(block)
        if rid and score and int(rid.group(1)) not in out:
            out[int(rid.group(1))] = float(score.group(1))
    return out


def parse_answer_value(text: str, answers: dict[str, float]) -> float | None:
    """A bare answer ("yes", "7") looked up in the logits-mode answer table, so those templates also work in text
    mode; case, surrounding space and a final period are ignored."""
    key = final_answer(text).strip().rstrip(".").strip().lower()
    lowered = {k.lower(): v for k, v in answers.items()}
    return lowered.get(key)


def expected_scores(probs: torch.Tensor, values: Sequence[float]) -> torch.Tensor:
    """Σ_k p_k·value_k per row: (B, K) probabilities → (B,) scores, in float32."""
    v = torch.tensor(list(values), dtype=torch.float32, device=probs.device)
    return probs.float() @ v


# ---------------------------------------------------------------------------------------------------- regions


def box_text(box: tuple[int, int, int, int], width: int, height: int) -> str:
    """A pixel box as fractions of the image size, "[0.12, 0.30, 0.55, 0.80]": meaningful without the pixel size."""
    x1, y1, x2, y2 = box
    return f"[{x1 / width:.2f}, {y1 / height:.2f}, {x2 / width:.2f}, {y2 / height:.2f}]"


def crop_box(box: tuple[int, int, int, int], width: int, height: int,
             margin: float) -> tuple[int, int, int, int] | None:
    """The box widened by `margin`·(its width, height) on each side and clamped to the image; None if empty."""
    x1, y1, x2, y2 = (int(v) for v in box)
    x1, x2 = max(0, min(x1, width)), max(0, min(x2, width))
    y1, y2 = max(0, min(y1, height)), max(0, min(y2, height))
    if x2 <= x1 or y2 <= y1:
        return None
    dx, dy = round(margin * (x2 - x1)), round(margin * (y2 - y1))
    return max(0, x1 - dx), max(0, y1 - dy), min(width, x2 + dx), min(height, y2 + dy)


# ---------------------------------------------------------------------------------------------------- judge


@dataclass
class Judgement:
    """One image's scores. `region_scores[j]` belongs to `regions[j]`; None = dropped (unparseable or empty box)."""

    global_score: float | None  # None when judge.global_layout is off
    region_scores: list[float | None]
    regions: list[Region]
    raw: list[str]  # answers as received (text mode) or the answer distribution (logits mode), for the report
    parse_failures: int = 0


@dataclass
class _Question:
    image_idx: int
    kind: str  # "global" | "region" | "sample"
    region_idx: int  # -1 for global
    image: Image.Image
    text: str
    score: float | None = None
    raw: str = ""


class SelfJudge:
    """Scores images with the model's own understanding path (srum.md §1.4), batched by `cfg.batch_size`."""

    def __init__(self, model: UnifiedModel, cfg: JudgeConfig, templates: JudgeTemplates) -> None:
        if cfg.mode == JudgeMode.logits and not templates.answers:
            raise ValueError(
                "judge.mode=logits needs templates with single-token answers (JudgeTemplates.answers); "
                "use judge.templates=digits or a world's templates, or judge.mode=text"
            )
        if cfg.sample_level_only and templates.sample_question is None:
            raise ValueError("judge.sample_level_only=true but these templates have no sample_question")
        self.model = model
        self.cfg = cfg
        self.templates = templates
        try:
            self._can_sample = "temperature" in inspect.signature(model.generate_text).parameters
        except (TypeError, ValueError):
            self._can_sample = False
        if cfg.mode == JudgeMode.text and cfg.retry_temperature > 0 and cfg.max_retries > 0 and not self._can_sample:
            logger.warning("stage=judge retry_temperature=%s but %s.generate_text takes no temperature: retries "
                           "repeat the greedy answer", cfg.retry_temperature, type(model).__name__)

    # ---- public ------------------------------------------------------------------------------------------------
    def judge(self, images: list[Image.Image], prompts: list[str],
              regions_per_image: list[list[Region]]) -> list[Judgement]:
        """One Judgement per image. In sample-level mode the regions are replaced by one whole-image region."""
        if not len(images) == len(prompts) == len(regions_per_image):
            raise ValueError(f"{len(images)} images, {len(prompts)} prompts and {len(regions_per_image)} region "
                             "lists: pass one of each per image")
        if self.cfg.sample_level_only:
            regions_per_image = [[_whole_image_region(im)] for im in images]
        questions, dropped = self._questions(images, prompts, regions_per_image)
        stats = {"retries": 0, "clamped": 0}
        if self.cfg.mode == JudgeMode.logits:
            self._answer_logits(questions)
        else:
            kinds = {"global": self.cfg.max_global_tokens, "sample": self.cfg.max_global_tokens,
                     "region": self.cfg.max_regional_tokens}
            for kind, max_tokens in kinds.items():
                self._answer_text([q for q in questions if q.kind == kind], max_tokens, stats)
        judgements = self._collect(questions, regions_per_image, len(images))
        self._log(judgements, len(questions), dropped, stats)
        return judgements

    # ---- questions ---------------------------------------------------------------------------------------------
    def _questions(self, images: list[Image.Image], prompts: list[str],
                   regions_per_image: list[list[Region]]) -> tuple[list[_Question], int]:
        t, think = self.templates, self.cfg.think and self.cfg.mode == JudgeMode.text
        prefix = t.think_instruction if think else ""
        out: list[_Question] = []
        dropped = 0  # regions with an empty box: nothing to show, so no score
        for i, (image, prompt, regions) in enumerate(zip(images, prompts, regions_per_image)):
            w, h = image.size
            full = box_text((0, 0, w, h), w, h)
            if self.cfg.sample_level_only:
                text = t.sample_question.format(prompt=prompt, object=prompt, box=full)  # type: ignore[union-attr]
                out.append(_Question(i, "sample", 0, image, prefix + text))
                continue
            if self.cfg.global_layout:
                text = t.global_question.format(prompt=prompt, object=prompt, box=full)
                out.append(_Question(i, "global", -1, image, prefix + text))
            objects = t.object_phrases(prompt) if t.object_phrases is not None and regions else [prompt]
            for j, region in enumerate(regions):
                crop = crop_box(region.box_xyxy, w, h, self.cfg.region_margin)
                if crop is None:
                    dropped += 1
                    continue
                crop_image = image.crop(crop)
                box = box_text(region.box_xyxy, w, h)
                for obj in objects:
                    text = t.region_question.format(prompt=prompt, object=obj, box=box)
                    out.append(_Question(i, "region", j, crop_image, prefix + text))
        return out, dropped

    # ---- logits mode -------------------------------------------------------------------------------------------
    def _answer_logits(self, questions: list[_Question]) -> None:
        keys, values = list(self.templates.answers), list(self.templates.answers.values())
        for start in range(0, len(questions), self.cfg.batch_size):
            chunk = questions[start:start + self.cfg.batch_size]
            probs = self.model.answer_distribution([q.image for q in chunk], [q.text for q in chunk], keys)
            if tuple(probs.shape) != (len(chunk), len(keys)):
                raise ValueError(f"answer_distribution returned shape {tuple(probs.shape)}; expected "
                                 f"{(len(chunk), len(keys))} (questions, answers)")
            scores = expected_scores(probs, values).tolist()
            for q, p, s in zip(chunk, probs.float().tolist(), scores):
                q.score = s
                q.raw = " ".join(f"{k}={pk:.3f}" for k, pk in zip(keys, p))

    # ---- text mode ---------------------------------------------------------------------------------------------
    def _parse(self, q: _Question, text: str) -> float | None:
        if q.kind == "region":
            blocks = parse_region_scores(text)
            score = next(iter(blocks.values())) if blocks else None  # one region per question: its first block
        else:
            score = parse_global_score(text)
        if score is None and self.templates.answers:
            score = parse_answer_value(text, self.templates.answers)
        return score

    def _answer_text(self, questions: list[_Question], max_new_tokens: int, stats: dict[str, int]) -> None:
        pending = questions
        for attempt in range(1 + self.cfg.max_retries):
            if not pending:
                break
            if attempt > 0:
                stats["retries"] += len(pending)
            temperature = self.cfg.retry_temperature if attempt > 0 else 0.0
            for start in range(0, len(pending), self.cfg.batch_size):
                chunk = pending[start:start + self.cfg.batch_size]
                texts = self._generate([q.image for q in chunk], [q.text for q in chunk], max_new_tokens, temperature,
                                       seed=attempt)
                for q, text in zip(chunk, texts):
                    q.raw, q.score = text, self._parse(q, text)
            pending = [q for q in pending if q.score is None]
        if self.cfg.clamp_scores:
            for q in questions:
                if q.score is not None and not -1.0 <= q.score <= 1.0:
                    stats["clamped"] += 1
                    q.score = min(max(q.score, -1.0), 1.0)

    def _generate(self, images: list[Image.Image], questions: list[str], max_new_tokens: int,
                  temperature: float, seed: int = 0) -> list[str]:
        if temperature > 0 and self._can_sample:
            # each retry samples with its own seed, so a retry is not the same answer again
            texts = self.model.generate_text(images, questions, max_new_tokens, temperature=temperature, seed=seed)
        else:
            texts = self.model.generate_text(images, questions, max_new_tokens)
        if len(texts) != len(questions):
            raise ValueError(f"generate_text returned {len(texts)} answers for {len(questions)} questions")
        return texts

    # ---- results -----------------------------------------------------------------------------------------------
    def _collect(self, questions: list[_Question], regions_per_image: list[list[Region]],
                 n_images: int) -> list[Judgement]:
        out = [Judgement(None, [None] * len(regions_per_image[i]), list(regions_per_image[i]), [])
               for i in range(n_images)]
        best: dict[tuple[int, int], float] = {}
        for q in questions:
            j = out[q.image_idx]
            j.raw.append(q.raw)
            if q.score is None:
                j.parse_failures += 1
            if q.kind == "global":
                j.global_score = 0.0 if q.score is None else q.score  # official: a failed global score is 0.0
            elif q.kind == "sample":
                j.region_scores[0] = 0.0 if q.score is None else q.score  # official: a failed sample score is 0.0
            elif q.score is not None:  # a region: the max over the object phrases that parsed
                key = (q.image_idx, q.region_idx)
                best[key] = max(best.get(key, q.score), q.score)
        for (i, r), s in best.items():
            out[i].region_scores[r] = s
        return out

    def _log(self, judgements: list[Judgement], n_questions: int, dropped: int, stats: dict[str, int]) -> None:
        failures = sum(j.parse_failures for j in judgements)
        globals_ = [j.global_score for j in judgements if j.global_score is not None]
        regions = [s for j in judgements for s in j.region_scores if s is not None]
        mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
        logger.log(
            logging.WARNING if failures else logging.DEBUG,  # per batch: the score stage logs the totals
            "stage=judge mode=%s images=%d questions=%d retries=%d parse_failures=%d clamped=%d empty_regions=%d "
            "mean_global=%.3f mean_region=%.3f",
            self.cfg.mode.value, len(judgements), n_questions, stats["retries"], failures, stats["clamped"], dropped,
            mean(globals_), mean(regions),
        )


def _whole_image_region(image: Image.Image) -> Region:
    w, h = image.size
    return Region(box_xyxy=(0, 0, w, h), mask=None, area=w * h, score=None)
