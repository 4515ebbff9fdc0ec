"""SRUM's evaluation protocol (srum.md §4): a local Qwen2.5-VL rates each image 0-100 and answers in JSON."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from srum.utils.device import resolve_dtype

logger = logging.getLogger(__name__)


# Our paraphrase of the official judge instruction (srum.md §4.3); the same text for every category.
VLM_PROMPT = """You are grading a generated image against the text prompt it was made from.
Prompt: "{prompt}"

Judge how faithfully the image depicts the prompt. Check the objects and their attributes (color, shape, texture), \
their spatial arrangement, and any actions or relations between them.

Give one integer score from 0 to 100:
- 81-100: the image matches the prompt perfectly.
- 61-80: most elements are present, with small discrepancies.
- 41-60: some elements are present, but key parts are missing or wrong.
- 21-40: hardly anything in the image matches the prompt.
- 1-20: the image fails to convey the prompt.

Reply with JSON only, in this form:
{{"score": <integer 0-100>, "explanation": "<at most 20 words>"}}"""

# Qwen2.5-VL's chat format, used when a model folder ships no chat template.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)
_SCORE_FIELD = re.compile(r"""["']?score["']?\s*:\s*["']?(-?\d+(?:\.\d+)?)""", re.IGNORECASE)


def _valid_score(value) -> int | None:
    """An integer score in [0, 100] (integral floats and numeric strings accepted), else None."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v) or v != round(v) or not 0 <= v <= 100:
        return None
    return int(v)


def parse_vlm_score(text: str) -> int | None:
    """The 0-100 score in a judge's answer, or None when there is none.

    Order (srum.md §4.4): strip code fences; parse the whole answer, then each {...} object in it, as JSON and read
    its `score`; failing that, a regex for `"score": <int>` anywhere in the text.
    """
    body = "\n".join(_FENCE.findall(text)) or text
    for candidate in (body.strip(), *_OBJECT.findall(body)):
        try:
            obj = json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(obj, dict) and "score" in obj and not isinstance(obj["score"], bool):
            score = _valid_score(obj["score"])
            if score is not None:
                return score
    m = _SCORE_FIELD.search(text)
    return _valid_score(m.group(1)) if m else None


FAILURE_SCORES = ("official", "exclude")
SPLIT = "split"  # the device name that spreads one judge over all visible GPUs


class VLMJudge:
    """SRUM's judge (srum.md §4.2-4.4): Qwen2.5-VL rates each image 0-100 against its prompt, greedy decoding.

    Parse failures are counted; `failure_score="official"` scores them -1 (on 0-100, averaged in as the official
    script does), `"exclude"` leaves them out of the means (score None). `device="split"` loads the model across
    every visible GPU (accelerate's device_map="auto"), for judges larger than one GPU, such as the 72B of the paper.
    """

    name = "vlm"

    def __init__(self, path: str | Path, device: str = "cpu", dtype: str = "auto", max_new_tokens: int = 512,
                 failure_score: str = "official") -> None:
        import torch
        from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

        if failure_score not in FAILURE_SCORES:
            raise ValueError(f"failure_score={failure_score!r}; expected one of {FAILURE_SCORES}")
        path = Path(path)
        self.max_new_tokens, self.failure_score = max_new_tokens, failure_score
        if device == SPLIT:  # too large for one GPU (72B): accelerate spreads the layers over every visible one
            gpu = "cuda" if torch.cuda.is_available() else "cpu"
            self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                path, dtype=resolve_dtype(dtype, torch.device(gpu)), device_map="auto")
            self.device = self.model.device  # where the inputs go: the first layers' device
        else:
            self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                path, dtype=resolve_dtype(dtype, torch.device(device))).to(device)
            self.device = device
        self.model.eval()
        # Tokenizer and image processor rather than AutoProcessor: in transformers 5 the Qwen2.5-VL processor also
        # builds a video processor, which needs torchvision. The image placeholder is expanded here as it does.
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.image_processor = AutoImageProcessor.from_pretrained(path)
        if not self.tokenizer.chat_template:
            self.tokenizer.chat_template = self._folder_template(path) or QWEN_CHAT_TEMPLATE
        self.merge = int(getattr(self.image_processor, "merge_size", 2))
        self.parse_failures = 0
        self._torch = torch

    @staticmethod
    def _folder_template(path: Path) -> str | None:
        if (path / "chat_template.jinja").is_file():
            return (path / "chat_template.jinja").read_text()
        if (path / "chat_template.json").is_file():
            return json.loads((path / "chat_template.json").read_text()).get("chat_template")
        return None

    def answer(self, image: Image.Image, prompt: str) -> str:
        """The judge's raw answer for one image (batch size 1, as the official script)."""
        messages = [{"role": "user", "content": [{"type": "image"},
                                                 {"type": "text", "text": VLM_PROMPT.format(prompt=prompt)}]}]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        vision = self.image_processor(images=[image.convert("RGB")], return_tensors="pt")
        n_tokens = int(vision["image_grid_thw"][0].prod()) // self.merge ** 2
        text = text.replace("<|image_pad|>", "<|image_pad|>" * n_tokens, 1)
        inputs = self.tokenizer(text, return_tensors="pt")
        with self._torch.no_grad():
            out = self.model.generate(
                input_ids=inputs["input_ids"].to(self.device), attention_mask=inputs["attention_mask"].to(self.device),
                pixel_values=vision["pixel_values"].to(self.device, self.model.dtype),
                image_grid_thw=vision["image_grid_thw"].to(self.device),
                do_sample=False, max_new_tokens=self.max_new_tokens)
        return self.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def judge(self, images: Sequence[Image.Image], prompts: Sequence[str],
              categories: Sequence[str] | None = None) -> list[dict]:
        rows = []
        for image, prompt in zip(images, prompts):
            text = self.answer(image, prompt)
            score = parse_vlm_score(text)
            failed = score is None
            if failed:
                self.parse_failures += 1
                score = -1 if self.failure_score == "official" else None
            rows.append({"score": None if score is None else score / 100, "judge_score_100": score,
                         "judge_answer": text, "parse_failed": failed})
        n_failed = sum(r["parse_failed"] for r in rows)
        if n_failed:
            logger.warning("judge=vlm images=%d parse_failures=%d total_parse_failures=%d failure_score=%s",
                           len(rows), n_failed, self.parse_failures, self.failure_score)
        return rows

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        return np.array([np.nan if r["score"] is None else r["score"] for r in self.judge(images, prompts)])
