"""Stage 2a: class-agnostic region proposals per generated image (srum.md §1.3; weak points §5 items 6-7).

Proposers share one output type. `SamProposer` is the official pipeline: SAM's automatic mask generator at its
default settings (point grid, predicted-IoU and stability filters, box NMS), re-implemented on transformers' SamModel
because transformers' own `mask-generation` pipeline needs torchvision. A prompt world may bring its own, cheap and
exact for its images (`regions.proposer=world`, `srum.worlds.interface.World.region_proposer`). All end in
`filter_regions` and `with_box_end`: largest first, optional minimum area, box NMS, top `max_regions`.

Conventions: boxes are integer pixel [x1, y1, x2, y2]; with `regions.box_end=official` (the default) x2/y2 are the
region's last pixel, as the official code's conversion of SAM's XYWH boxes gives (so the reward map, which fills
[x1, x2) × [y1, y2), leaves that column and row out), with `exclusive` one past it (x2 − x1 is the width); masks are
(H, W) bool arrays; `area` is the mask's pixel count.
"""

from __future__ import annotations

import logging
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from srum.config import RegionProposer as ProposerKind
from srum.config import RegionsConfig
from srum.utils.boxes import box_iou, masks_to_boxes, nms

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]

MASK_THRESHOLD = 0.0  # SAM's logit threshold for a binary mask (SamModel / segment_anything default)


@dataclass
class Region:
    """One proposed region: its box, its mask (None when a proposer only has a box), pixel area and confidence."""

    box_xyxy: Box  # pixels; x2/y2 on the last pixel or one past it (regions.box_end)
    mask: np.ndarray | None  # (H, W) bool
    area: int
    score: float | None = None  # proposer confidence, e.g. SAM's predicted IoU; None when it has none


@runtime_checkable
class RegionProposer(Protocol):
    """Anything that turns images into regions; the judge stage only sees this."""

    def propose(self, images: list[Image.Image]) -> list[list[Region]]:
        """Regions for each image, largest first, at most `max_regions` per image."""
        ...


def stability_score(logits: torch.Tensor, mask_threshold: float, offset: float) -> torch.Tensor:
    """SAM's stability score: IoU of the mask at threshold+offset with the mask at threshold−offset, over (..., H, W).

    The high mask lies inside the low one, so IoU = |high| / |low|. An empty low mask scores 0 (SAM gives NaN,
    which fails every threshold > 0 just the same).
    """
    inter = (logits > mask_threshold + offset).sum(dim=(-2, -1), dtype=torch.int64)
    union = (logits > mask_threshold - offset).sum(dim=(-2, -1), dtype=torch.int64)
    ratio = inter.float() / union.clamp(min=1).float()
    return torch.where(union > 0, ratio, torch.zeros_like(ratio))


def point_grid(points_per_side: int) -> np.ndarray:
    """(n², 2) points (x, y) in [0, 1]: cell centres of an n×n grid, x fastest (as segment_anything's grid)."""
    offset = 1 / (2 * points_per_side)
    side = np.linspace(offset, 1 - offset, points_per_side)
    xs = np.tile(side[None, :], (points_per_side, 1))
    ys = np.tile(side[:, None], (1, points_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def with_box_end(regions: list[Region], box_end: str) -> list[Region]:
    """Proposers build boxes one past the last pixel; `official` moves x2/y2 back onto it (regions.box_end)."""
    if box_end == "exclusive":
        return regions
    return [dataclasses.replace(r, box_xyxy=(r.box_xyxy[0], r.box_xyxy[1], r.box_xyxy[2] - 1, r.box_xyxy[3] - 1))
            for r in regions]


def filter_regions(regions: list[Region], max_regions: int, min_area_frac: float, image_size: tuple[int, int],
                   nms_thresh: float) -> list[Region]:
    """Largest first; drop regions under `min_area_frac` of the image; drop any whose box has IoU > `nms_thresh` with
    a larger kept one; keep the first `max_regions`.

    `image_size` is (height, width); only its product is used. The official pipeline is the sort and the top-k
    (srum.md §1.3); area filter and dedup are §5.7 and are no-ops at min_area_frac=0, nms_thresh=1.
    """
    min_area = min_area_frac * image_size[0] * image_size[1]
    ordered = sorted(regions, key=lambda r: -r.area)  # stable: equal areas keep the proposer's order
    kept: list[Region] = []
    kept_boxes: list[torch.Tensor] = []
    for r in ordered:
        if len(kept) >= max_regions:
            break
        if r.area < min_area:
            continue
        box = torch.tensor([r.box_xyxy], dtype=torch.float32)
        if kept_boxes and bool((box_iou(box, torch.cat(kept_boxes)) > nms_thresh).any()):
            continue
        kept.append(r)
        kept_boxes.append(box)
    return kept


# ---------------------------------------------------------------------------------------------------- SAM


class SamProposer:
    """SAM automatic mask generation (srum.md §1.3) on a local transformers SamModel folder.

    Per image: embed once; prompt with a points_per_side² grid, points_per_batch points at a time, three masks per
    point; keep masks with predicted IoU > pred_iou_thresh and stability ≥ stability_score_thresh (the comparisons
    segment_anything uses; a threshold of 0 skips its filter), box NMS at box_nms_thresh by predicted IoU, then
    `filter_regions`. No crop layers and no small-region cleanup, as in the official defaults.
    """

    def __init__(self, model_path: str, cfg: RegionsConfig, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        from transformers import SamModel, SamProcessor  # deferred: only the SAM proposer needs them

        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"regions.sam_path={model_path!r} is not a transformers SAM folder (no config.json there); point it "
                f"at a local download of facebook/sam-vit-huge, or set regions.proposer=components")
        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = dtype
        self.processor = SamProcessor.from_pretrained(str(path))
        self.model = SamModel.from_pretrained(str(path), dtype=dtype).to(self.device).eval()
        side = self.processor.image_processor.size["longest_edge"]
        if side != self.model.config.vision_config.image_size:
            raise ValueError(
                f"regions.sam_path={model_path!r}: the processor resizes to longest_edge={side} but the model expects "
                f"{self.model.config.vision_config.image_size} px; fix size/pad_size in its preprocessor config")
        self._grid = point_grid(cfg.points_per_side)

    def propose(self, images: list[Image.Image]) -> list[list[Region]]:
        """Regions for each image, largest first (see the class docstring)."""
        return [self._propose_one(im) for im in images]

    @torch.inference_mode()
    def _propose_one(self, image: Image.Image) -> list[Region]:
        cfg = self.cfg
        image = image.convert("RGB")
        w, h = image.size
        enc = self.processor(images=image, return_tensors="pt")
        original_size = [int(v) for v in enc["original_sizes"][0]]
        reshaped = [int(v) for v in enc["reshaped_input_sizes"][0]]
        embeddings = self.model.get_image_embeddings(enc["pixel_values"].to(self.device, self.dtype))
        # grid in image pixels (x, y), then into the resized frame the prompt encoder works in
        points = self._grid * np.array([w, h]) * np.array([reshaped[1] / w, reshaped[0] / h])
        masks, boxes, scores = [], [], []
        n_candidates = 0
        for start in range(0, len(points), cfg.points_per_batch):
            batch = torch.as_tensor(points[start:start + cfg.points_per_batch], dtype=torch.float32,
                                    device=self.device)
            out = self.model(image_embeddings=embeddings, input_points=batch[None, :, None, :],
                             input_labels=torch.ones(1, len(batch), 1, dtype=torch.long, device=self.device),
                             multimask_output=True)
            # fp32 before thresholding: the stability score counts pixels within ±offset of the threshold
            low_res = out.pred_masks[0].float()  # (P, 3, h', w')
            logits = self.processor.post_process_masks([low_res], [original_size], [reshaped],
                                                       mask_threshold=MASK_THRESHOLD, binarize=False)[0]
            logits = logits.flatten(0, 1)  # (P·3, H, W)
            iou_pred = out.iou_scores[0].float().flatten()
            n_candidates += len(iou_pred)
            keep = torch.ones_like(iou_pred, dtype=torch.bool)
            if cfg.pred_iou_thresh > 0:
                keep &= iou_pred > cfg.pred_iou_thresh
            if cfg.stability_score_thresh > 0:
                stability = stability_score(logits, MASK_THRESHOLD, cfg.stability_score_offset)
                keep &= stability >= cfg.stability_score_thresh
            binary = logits[keep] > MASK_THRESHOLD
            masks.append(binary.cpu())
            boxes.append(masks_to_boxes(binary).cpu())
            scores.append(iou_pred[keep].cpu())
        all_masks, all_boxes, all_scores = torch.cat(masks), torch.cat(boxes), torch.cat(scores)
        nonempty = all_masks.flatten(1).any(dim=1)
        all_masks, all_boxes, all_scores = all_masks[nonempty], all_boxes[nonempty], all_scores[nonempty]
        kept = nms(all_boxes, all_scores, cfg.box_nms_thresh)
        regions = [Region(box_xyxy=tuple(int(v) for v in all_boxes[i]), mask=all_masks[i].numpy(),
                          area=int(all_masks[i].sum()), score=float(all_scores[i])) for i in kept.tolist()]
        out_regions = with_box_end(filter_regions(regions, cfg.max_regions, cfg.min_area_frac, (h, w),
                                                  cfg.box_nms_thresh), cfg.box_end)
        logger.debug("stage=regions proposer=sam size=%dx%d candidates=%d passed=%d after_nms=%d kept=%d",
                     w, h, n_candidates, int(nonempty.sum()), len(regions), len(out_regions))
        return out_regions


# ---------------------------------------------------------------------------------------------------- factory


def build_proposer(cfg: RegionsConfig, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                   world: str | None = None) -> RegionProposer:
    """The proposer `cfg.proposer` names: SAM (device and dtype matter only for it), or the region proposer of the
    prompt world `world` (generate.prompts)."""
    from srum.worlds.registry import world_for

    if ProposerKind(cfg.proposer) == ProposerKind.sam:
        if cfg.sam_path is None:
            raise ValueError("regions.proposer=sam needs regions.sam_path=/path/to/sam-vit-huge "
                             "(a local transformers SAM folder), or set regions.proposer=world for a prompt world")
        return SamProposer(cfg.sam_path, cfg, device, dtype)
    found = world_for(world)
    if found is None:
        raise ValueError(f"regions.proposer=world needs a prompt world; {world!r} is none")
    return found.region_proposer(cfg)
