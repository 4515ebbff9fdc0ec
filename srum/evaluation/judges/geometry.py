"""Box geometry of T2I-CompBench's detector metrics: the relation score of two boxes (IoU and NMS are
`srum.utils.boxes`')."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from srum.evaluation.judges.prompt_parsing import SPATIAL_3D
from srum.utils.boxes import box_iou


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
    overlap = float(box_iou(_as_boxes(box1), _as_boxes(box2))[0, 0])
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
        return 1.0 if overlap < iou_threshold else iou_threshold / overlap
    if relation in SPATIAL_3D:
        nearer = box1[3] > box2[3]  # bottom edge lower in the image: nearer the camera
        ordered = nearer if relation == "in front of" else box1[3] < box2[3]
        if not ordered or overlap <= 0:
            return 0.0
        return 1.0 if overlap > iou_threshold_3d else overlap / iou_threshold_3d
    return 0.0


def _as_boxes(box: Sequence[float]) -> torch.Tensor:
    """One xyxy box (a list, tuple or array) as a (1, 4) float64 tensor."""
    return torch.from_numpy(np.asarray(box, dtype=np.float64).reshape(1, 4))
