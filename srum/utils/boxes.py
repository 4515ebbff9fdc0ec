"""Box maths shared by region proposals and the detector judge: pairwise IoU, greedy NMS, masks to boxes.

Boxes are (N, 4) xyxy; `masks_to_boxes` gives exclusive x2/y2 (one past the last pixel).
"""

from __future__ import annotations

import numpy as np
import torch

def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes → (N, M); empty boxes have IoU 0 with everything."""
    a, b = a.float(), b.float()
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thresh: float) -> torch.Tensor:
    """Greedy non-maximum suppression, as torchvision.ops.nms: indices of kept boxes, highest score first.

    A box is dropped when its IoU with an already kept, higher-scored box is > `iou_thresh`; ties in score keep the
    earlier index first, so the result is deterministic.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores.float(), descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order]).cpu().numpy()
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_thresh
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool → (N, 4) int64 xyxy boxes with exclusive x2/y2; an empty mask gives [0, 0, 0, 0]."""
    if masks.numel() == 0:
        return torch.zeros(masks.shape[0], 4, dtype=torch.long, device=masks.device)
    h, w = masks.shape[-2:]
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # (N, H), (N, W)
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y1 = torch.where(rows, ar_h, h).min(dim=1).values
    y2 = torch.where(rows, ar_h, -1).max(dim=1).values + 1
    x1 = torch.where(cols, ar_w, w).min(dim=1).values
    x2 = torch.where(cols, ar_w, -1).max(dim=1).values + 1
    boxes = torch.stack([x1, y1, x2, y2], dim=1)
    empty = ~rows.any(dim=1)
    return torch.where(empty[:, None], torch.zeros_like(boxes), boxes)
