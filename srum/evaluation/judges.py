"""Scorers of (image, prompt) pairs behind one signature: images, prompts → scores in [0, 1].

Judges: `shapes` (ShapesWorld oracle), `vlm` (SRUM's protocol, srum.md §4: a Qwen2.5-VL rates 0-100, JSON answer) and
`official` (T2I-CompBench's metric families per category: BLIP-VQA, CLIPScore, an open-vocabulary detector).
Judges that need the category or give more than a score also have `judge(images, prompts, categories) -> list[dict]`
(each dict has `score` in [0, 1], or None when excluded, plus details); `judge_batch` calls whichever a judge has.
Weights come only from local folders (`paths`); nothing is downloaded. Boxes are `box_xyxy_px` in image pixels.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)


class Judge(Protocol):
    name: str

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        """(N,) scores in [0, 1]."""


class ShapesOracleJudge:
    """The ShapesWorld oracle: parses pixels, scores the fraction of the prompt's requirements met."""

    name = "shapes"

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        from srum.worlds.shapes.oracle import score_batch

        return score_batch(images, prompts)


def judge_batch(judge: Judge, images: Sequence[Image.Image], prompts: Sequence[str],
                categories: Sequence[str]) -> list[dict]:
    """One dict per image with `score` (in [0, 1], or None: excluded from means) and the judge's details."""
    if hasattr(judge, "judge"):
        return judge.judge(images, prompts, categories)
    return [{"score": float(s)} for s in judge.score(images, prompts)]


def _dtype(device: str, dtype: str = "auto"):
    """fp32 on CPU, bf16 on CUDA unless `dtype` names one."""
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def _model_dir(paths: dict[str, str | Path], key: str, judge: str) -> Path:
    """The local folder for `key`, or a FileNotFoundError that names the flag to set."""
    if key not in paths:
        raise FileNotFoundError(f"judge {judge!r} needs a local {key} model folder: pass --judge-paths {key}=DIR "
                                f"(or --tiny-judges DIR for tiny random stand-ins); got keys {sorted(paths)}")
    p = Path(paths[key])
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"--judge-paths {key}={str(p)!r} has no config.json; point it at a local "
                                f"Hugging Face model folder (weights are never downloaded)")
    return p


# ---------------------------------------------------------------------------------------------------- vlm (SRUM §4)

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


class VLMJudge:
    """SRUM's judge (srum.md §4.2-4.4): Qwen2.5-VL rates each image 0-100 against its prompt, greedy decoding.

    Parse failures are counted; `failure_score="official"` scores them -1 (on 0-100, averaged in as the official
    script does), `"exclude"` leaves them out of the means (score None).
    """

    name = "vlm"

    def __init__(self, path: str | Path, device: str = "cpu", dtype: str = "auto", max_new_tokens: int = 512,
                 failure_score: str = "official") -> None:
        import torch
        from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

        if failure_score not in FAILURE_SCORES:
            raise ValueError(f"failure_score={failure_score!r}; expected one of {FAILURE_SCORES}")
        path = Path(path)
        self.device, self.max_new_tokens, self.failure_score = device, max_new_tokens, failure_score
        self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=_dtype(device, dtype)).to(device)
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


# ---------------------------------------------------------------------------------------------------- official metrics

ATTRIBUTE_CATEGORIES = ("color", "shape", "texture")
SPATIAL_2D = ("on side of", "next to", "near", "on the left of", "on the right of", "on the bottom of",
              "on the top of", "on top of")
SPATIAL_3D = ("in front of", "behind", "hidden by")
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10}
_DETERMINERS = {"a", "an", "the", "some", "his", "her", "their", "its", "this", "that"}
# Where noun phrases end: conjunctions, prepositions, relation phrases and copulas (longest first).
_PHRASE_BREAKS = re.compile(
    r",|;|\b(?:" + "|".join(sorted(
        [*map(re.escape, SPATIAL_2D + SPATIAL_3D), "and", "with", "on", "in", "of", "at", "under", "above", "below",
         "beside", "inside", "into", "onto", "over", "from", "by", "while", "is", "are", "was", "were", "has", "have",
         "to", "for"], key=len, reverse=True)) + r")\b")
_SKIP_PHRASES = {"top", "the side", "the left", "the right", "side", "left", "right", "bottom", "the top",
                 "the bottom", "front"}


def noun_phrases(prompt: str, max_phrases: int = 8) -> list[str]:
    """The prompt's noun phrases by rule (T2I-CompBench uses spaCy's noun_chunks, which is not installed here).

    Split at commas, conjunctions, prepositions, relation phrases and copulas; drop leading -ing/-ly words (verbs,
    adverbs: "lazily lounging"), position words ("top", "the left") and empty pieces. "a green bench and a blue bowl"
    gives ["a green bench", "a blue bowl"].
    """
    text = re.sub(r"[.!?\"()]", " ", prompt.lower())
    phrases = []
    for piece in _PHRASE_BREAKS.split(text):
        words = piece.split()
        while words and (words[0].endswith("ing") or words[0].endswith("ly")):
            words = words[1:]
        phrase = " ".join(words)
        if phrase and phrase not in _SKIP_PHRASES:
            phrases.append(phrase)
    return phrases[:max_phrases]


def blip_question(phrase: str) -> str:
    """"{phrase}?" after BLIP's question cleaning (lower case, punctuation dropped)."""
    return re.sub(r"[.!\"()*#:;~]", "", phrase.lower()).strip() + "?"


def object_name(phrase: str) -> str:
    """A detector query from a noun phrase: determiners, number words and punctuation dropped."""
    words = [w for w in re.sub(r"[.,!?\"]", " ", phrase.lower()).split() if w not in _DETERMINERS]
    return " ".join(words)


def find_relation(prompt: str, vocabulary: Sequence[str] = SPATIAL_2D + SPATIAL_3D) -> tuple[str, str, str] | None:
    """(object 1, relation, object 2) around the first relation phrase found (longest phrases tried first)."""
    low = prompt.lower()
    for rel in sorted(vocabulary, key=len, reverse=True):
        m = re.search(rf"\b{re.escape(rel)}\b", low)
        if m:
            left, right = noun_phrases(low[:m.start()]), noun_phrases(low[m.end():])
            if left and right:
                return object_name(left[-1]), rel, object_name(right[0])
    return None


def count_phrases(prompt: str) -> list[tuple[int, str]]:
    """(count, object) for each "<number word> <noun phrase>" in a numeracy prompt ("two boys and a cat")."""
    out = []
    for piece in re.split(r",|\band\b", prompt.lower()):
        words = re.sub(r"[.!?\"]", " ", piece).split()
        if len(words) >= 2 and words[0] in _NUMBERS:
            out.append((_NUMBERS[words[0]], object_name(" ".join(words[1:]))))
    return out


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def relation_score(relation: str, box1: Sequence[float], box2: Sequence[float], image_size: int,
                   iou_threshold: float = 0.1, distance_fraction: float = 150 / 512,
                   iou_threshold_3d: float = 0.5) -> float:
    """T2I-CompBench's `determine_position` soft score in [0, 1] for "object 1 <relation> object 2".

    2D as the original: the dominant axis of the centre offset must match the relation and its sign the side; boxes
    overlapping by IoU ≥ 0.1 get 0.1 / IoU; "next to" is 1 within 150 px (here 150/512 of the image side), less
    farther. 3D: the original compares mean depth (DPT) inside the boxes; with no depth model, the depth proxy is the
    box's bottom edge (lower in the frame = nearer, a ground-plane assumption). As there, boxes must overlap: IoU > 0.5
    → 1, 0 < IoU ≤ 0.5 → IoU / 0.5, no overlap → 0, each only when the nearer/farther order is right.
    """
    c1 = ((box1[0] + box1[2]) / 2, (box1[1] + box1[3]) / 2)
    c2 = ((box2[0] + box2[2]) / 2, (box2[1] + box2[3]) / 2)
    dx, dy = c2[0] - c1[0], c2[1] - c1[1]
    iou = _iou(box1, box2)
    if relation in ("next to", "on side of", "near"):
        limit = distance_fraction * image_size
        return 1.0 if abs(dx) < limit or abs(dy) < limit else limit / max(abs(dx), abs(dy))
    sides = {"on the right of": (dx < 0, True), "on the left of": (dx > 0, True),
             "on the bottom of": (dy < 0, False), "on the top of": (dy > 0, False), "on top of": (dy > 0, False)}
    if relation in sides:
        right_side, horizontal = sides[relation]
        dominant = abs(dx) > abs(dy) if horizontal else abs(dy) > abs(dx)
        if not (right_side and dominant):
            return 0.0
        return 1.0 if iou < iou_threshold else iou_threshold / iou
    if relation in SPATIAL_3D:
        nearer = box1[3] > box2[3]  # bottom edge lower in the image: nearer the camera
        ordered = nearer if relation == "in front of" else box1[3] < box2[3]
        if not ordered or iou <= 0:
            return 0.0
        return 1.0 if iou > iou_threshold_3d else iou / iou_threshold_3d
    return 0.0


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> list[int]:
    """Indices kept by greedy non-maximum suppression, best score first. boxes (N, 4) xyxy."""
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(_iou(boxes[i], boxes[j]) <= iou_threshold for j in keep):
            keep.append(int(i))
    return keep


def _features(out):
    """transformers 5 returns output objects from get_*_features; CLIPScore expects the projected tensor."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    return out.pooler_output if getattr(out, "pooler_output", None) is not None else out[0]


def local_clip_score(model, processor):
    """A torchmetrics `CLIPScore` over a local `CLIPModel`/`CLIPProcessor` (no hub name needed).

    Wraps the model so `get_image_features`/`get_text_features` return tensors, as torchmetrics expects, where
    transformers 5 returns output objects.
    """
    import torch
    from torchmetrics.multimodal.clip_score import CLIPScore

    class _TensorFeatures(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config

        def get_image_features(self, *args, **kwargs):
            return _features(self.inner.get_image_features(*args, **kwargs))

        def get_text_features(self, *args, **kwargs):
            return _features(self.inner.get_text_features(*args, **kwargs))

    wrapped = _TensorFeatures(model)
    return CLIPScore(model_name_or_path=lambda: (wrapped, processor))


class OfficialJudge:
    """T2I-CompBench's metric family per category, on local BLIP-VQA, CLIP and OWLv2 weights (loaded when needed).

    color / shape / texture: BLIP-VQA, product over noun phrases of P("yes" | image, "{phrase}?").
    non_spatial: CLIP cosine similarity of image and prompt (max 0), as CLIPScore / 100.
    spatial / 3d_spatial: OWLv2 boxes of both objects; 0.25·s1 + 0.25·s2 + relation_score / 2 (one object found:
    0.25·s), the original UniDet formula. numeracy: fraction of "<number> <noun>" phrases whose NMS'd detection count
    above `count_threshold` equals the number. complex (and its action/spatial subsets): the mean of BLIP-VQA,
    CLIP and, when the prompt has a relation phrase, the spatial score.
    """

    name = "official"

    def __init__(self, paths: dict[str, str | Path], device: str = "cpu", dtype: str = "auto",
                 box_threshold: float = 0.1, count_threshold: float = 0.3, max_phrases: int = 8,
                 batch_size: int = 16) -> None:
        self.paths, self.device, self.dtype = dict(paths), device, dtype
        self.box_threshold, self.count_threshold = box_threshold, count_threshold
        self.max_phrases, self.batch_size = max_phrases, batch_size
        self._blip = self._clip = self._owl = None

    # ---- models, loaded on first use
    def _load(self, key: str, model_cls: str, processor_cls: str):
        import transformers

        path = _model_dir(self.paths, key, self.name)
        model = getattr(transformers, model_cls).from_pretrained(path, dtype=_dtype(self.device, self.dtype))
        return model.to(self.device).eval(), getattr(transformers, processor_cls).from_pretrained(path)

    def blip_yes_probs(self, images: Sequence[Image.Image], questions: Sequence[str]) -> np.ndarray:
        """P("yes") of BLIP's answer decoder at its first step, over the whole vocabulary. (N,) for N pairs."""
        import torch

        if self._blip is None:
            self._blip = self._load("blip", "BlipForQuestionAnswering", "BlipProcessor")
        model, proc = self._blip
        yes = proc.tokenizer.convert_tokens_to_ids("yes")
        out = []
        for s in range(0, len(questions), self.batch_size):
            batch = proc(images=[im.convert("RGB") for im in images[s:s + self.batch_size]],
                         text=list(questions[s:s + self.batch_size]), return_tensors="pt", padding=True)
            with torch.no_grad():
                img = model.vision_model(pixel_values=batch["pixel_values"].to(self.device, model.dtype))[0]
                ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
                q = model.text_encoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=img,
                                       encoder_attention_mask=torch.ones(img.shape[:-1], dtype=torch.long,
                                                                         device=self.device), return_dict=False)[0]
                bos = torch.full((ids.shape[0], 1), model.decoder_start_token_id, device=self.device)
                logits = model.text_decoder(input_ids=bos, encoder_hidden_states=q, encoder_attention_mask=mask,
                                            return_dict=True).logits[:, 0]
            out.append(torch.softmax(logits.float(), dim=-1)[:, yes].cpu())  # softmax in fp32
        return torch.cat(out).numpy() if out else np.zeros(0)

    def attribute_scores(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]:
        pairs = [(i, blip_question(p)) for i, prompt in enumerate(prompts)
                 for p in noun_phrases(prompt, self.max_phrases)]
        probs = self.blip_yes_probs([images[i] for i, _ in pairs], [q for _, q in pairs])
        scores = [1.0] * len(prompts)  # no noun phrase: the original multiplies nothing (1)
        for (i, _), p in zip(pairs, probs):
            scores[i] *= float(p)
        return scores

    def clip_scores(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]:
        import torch
        from torchmetrics.functional.multimodal.clip_score import _clip_score_update

        if not images:  # a batch without non-spatial prompts; torchmetrics rejects empty lists
            return []
        if self._clip is None:
            model, proc = self._load("clip", "CLIPModel", "CLIPProcessor")
            self._clip = local_clip_score(model, proc)
        metric = self._clip
        tensors = [torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).to(self.device) for im in images]
        with torch.no_grad():
            per_image, _ = _clip_score_update(tensors, list(prompts), metric.model, metric.processor)
        return [max(float(s) / 100, 0.0) for s in per_image]

    def detect(self, image: Image.Image, queries: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: (boxes (K, 4) xyxy px, scores (K,)) of OWLv2 detections above `box_threshold`."""
        import torch

        if self._owl is None:
            self._owl = self._load("owl", "Owlv2ForObjectDetection", "Owlv2Processor")
        model, proc = self._owl
        # OWL's text tower has a short position table (16 in OWLv2): longer noun phrases are truncated to fit it.
        max_len = model.config.text_config.max_position_embeddings
        inputs = proc(text=[list(queries)], images=[image.convert("RGB")], return_tensors="pt", padding=True,
                      truncation=True, max_length=max_len)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad():
            outputs = model(**inputs)
        # OWLv2 pads images to a square: boxes come back in the padded square's frame.
        side = max(image.size)
        res = proc.post_process_grounded_object_detection(outputs, threshold=self.box_threshold,
                                                          target_sizes=[(side, side)])[0]
        boxes, scores, labels = (res[k].float().cpu().numpy() for k in ("boxes", "scores", "labels"))
        return [(boxes[labels == q], scores[labels == q]) for q in range(len(queries))]

    def spatial_score(self, image: Image.Image, prompt: str) -> float | None:
        """None when the prompt has no relation phrase."""
        rel = find_relation(prompt)
        if rel is None:
            return None
        obj1, relation, obj2 = rel
        found = [(b[np.argmax(s)], float(s.max())) if len(s) else None for b, s in self.detect(image, [obj1, obj2])]
        if found[0] and found[1]:
            return 0.25 * found[0][1] + 0.25 * found[1][1] + relation_score(
                relation, found[0][0], found[1][0], max(image.size)) / 2
        return 0.25 * next((f[1] for f in found if f), 0.0)

    def numeracy_score(self, image: Image.Image, prompt: str) -> float:
        wanted = count_phrases(prompt)
        if not wanted:
            return 0.0
        detections = self.detect(image, [name for _, name in wanted])
        hits = 0
        for (n, _), (boxes, scores) in zip(wanted, detections):
            strong = scores >= self.count_threshold
            hits += len(nms(boxes[strong], scores[strong])) == n
        return hits / len(wanted)

    def judge(self, images: Sequence[Image.Image], prompts: Sequence[str], categories: Sequence[str]) -> list[dict]:
        rows: list[dict] = [{} for _ in images]
        idx: dict[str, list[int]] = {"attribute": [], "non_spatial": [], "spatial": [], "numeracy": [], "complex": []}
        unknown = set()
        for i, c in enumerate(categories):
            key = ("attribute" if c in ATTRIBUTE_CATEGORIES else "spatial" if c in ("spatial", "3d_spatial")
                   else "complex" if c.startswith("complex") else c)
            if key not in idx:
                unknown.add(c)
            else:
                idx[key].append(i)
        if unknown:
            raise ValueError(f"judge 'official' has no metric for categories {sorted(unknown)}; it scores "
                             f"T2I-CompBench's categories (use --judge vlm or shapes for others)")
        attr = idx["attribute"]
        for i, s in zip(attr, self.attribute_scores([images[i] for i in attr], [prompts[i] for i in attr])):
            rows[i] = {"score": s, "metric": "blip_vqa"}
        ns = idx["non_spatial"]
        for i, s in zip(ns, self.clip_scores([images[i] for i in ns], [prompts[i] for i in ns])):
            rows[i] = {"score": s, "metric": "clip"}
        for i in idx["spatial"]:
            s = self.spatial_score(images[i], prompts[i])
            rows[i] = {"score": s or 0.0, "metric": "detector_spatial", "relation_found": s is not None}
        for i in idx["numeracy"]:
            rows[i] = {"score": self.numeracy_score(images[i], prompts[i]), "metric": "detector_count"}
        cx = idx["complex"]
        if cx:
            sub_images, sub_prompts = [images[i] for i in cx], [prompts[i] for i in cx]
            blip, clip = self.attribute_scores(sub_images, sub_prompts), self.clip_scores(sub_images, sub_prompts)
            for i, b, c in zip(cx, blip, clip):
                sp = self.spatial_score(images[i], prompts[i])
                parts = {"blip_vqa": b, "clip": c, **({"spatial": sp} if sp is not None else {})}
                rows[i] = {"score": sum(parts.values()) / len(parts), "metric": "complex_mean", "parts": parts}
        return rows

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        raise TypeError("judge 'official' needs each image's category: call judge(images, prompts, categories)")


JUDGES = {"shapes": ShapesOracleJudge, "vlm": VLMJudge, "official": OfficialJudge}


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
    """The judge `name`; `vlm` reads paths["vlm"], `official` paths["blip" | "clip" | "owl"] (when needed)."""
    if name not in JUDGES:
        raise ValueError(f"unknown judge {name!r}; expected one of {sorted(JUDGES)}")
    paths = dict(paths or {})
    if name == "vlm":
        return VLMJudge(_model_dir(paths, "vlm", name), device=device, **options)
    if name == "official":
        return OfficialJudge(paths, device=device, **options)
    return JUDGES[name]()
