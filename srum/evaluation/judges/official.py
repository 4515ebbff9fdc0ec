"""T2I-CompBench's own metric families, as far as the transformers ecosystem allows (see the class docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from srum.evaluation.judges.base import local_model_dir
from srum.evaluation.judges.clip_score import local_clip_score
from srum.evaluation.judges.geometry import relation_score
from srum.evaluation.judges.prompt_parsing import (
    ATTRIBUTE_CATEGORIES,
    blip_question,
    count_phrases,
    find_relation,
    noun_phrases,
)
from srum.utils.boxes import nms
from srum.utils.device import resolve_dtype

NMS_IOU = 0.5  # T2I-CompBench's numeracy: detections overlapping more than this count once


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

        path = local_model_dir(self.paths, key, self.name)
        dtype = resolve_dtype(self.dtype, torch.device(self.device))
        model = getattr(transformers, model_cls).from_pretrained(path, dtype=dtype)
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
            hits += len(nms(torch.from_numpy(boxes[strong]), torch.from_numpy(scores[strong]), NMS_IOU)) == n
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
                             f"T2I-CompBench's categories (use --judge vlm, or a world's own judge, for others)")
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
