"""Which object's shape each ViT patch shows: dense pretraining targets for the tiny ViT.

Language losses alone (descriptions, yes/no questions) left the 3-layer ViT barely encoding shape in whole
images (a linear probe read single objects' shape at 0.63); a per-patch shape target on the same ViT reaches
about 0.9 on held-out renders in ~1,000 steps (see the checkpoint card). A patch is labelled with the shape
of the object covering most of it (the nearest one where objects overlap), or background.
"""

from __future__ import annotations

import numpy as np

from srum.worlds.shapes.render import object_mask
from srum.worlds.shapes.scene import SHAPES, Scene

BACKGROUND = 0
N_CLASSES = len(SHAPES) + 1  # background, then SHAPES in order


def patch_shape_labels(scene: Scene, grid: int, supersample: int = 4) -> np.ndarray:
    """(grid·grid,) int64 labels in row-major patch order: 0 for background, 1 + SHAPES.index(shape) otherwise."""
    big = grid * supersample
    owner = np.full((big, big), -1)
    for i, obj in sorted(enumerate(scene.objects), key=lambda item: -item[1].depth):  # far first, near paints over
        owner[object_mask(obj, big)] = i
    per_patch = owner.reshape(grid, supersample, grid, supersample).transpose(0, 2, 1, 3).reshape(grid * grid, -1)
    classes = np.array([BACKGROUND] + [1 + SHAPES.index(o.shape) for o in scene.objects])
    votes = np.stack([(per_patch == i).sum(axis=1) for i in range(-1, len(scene.objects))], axis=1)
    return classes[votes.argmax(axis=1)]  # ties go to the lower index: background, then the first-listed object
