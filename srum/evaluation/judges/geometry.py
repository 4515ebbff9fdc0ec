"""Box geometry of T2I-CompBench's detector metrics: IoU, the relation score of two boxes, and NMS."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from srum.evaluation.judges.prompt_parsing import SPATIAL_3D


def iou(a: Sequence[float], b: Sequence[float]) -> float:
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
    overlap = iou(box1, box2)
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


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> list[int]:
    """Indices kept by greedy non-maximum suppression, best score first. boxes (N, 4) xyxy."""
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(iou(boxes[i], boxes[j]) <= iou_threshold for j in keep):
            keep.append(int(i))
    return keep
