"""Ground-truth scenes for a prompt: `sample_scene(spec, rng)` returns a Scene that satisfies every requirement.

Layouts leave margins the renderer's jitter cannot close: free objects keep ≥ 0.07 canvas between bounding boxes
(so two same-colour objects never merge after blur); spatial pairs differ along the named axis by ≥ 0.2 and by more
than 1.3× the other axis; an occluder is centred on the back object's outline at an edge midpoint and covers less
than its edge, so the back object's corners stay visible and its convex hull is still its shape; an inner object
keeps ≥ 34 % of the outer's inradius clear of the outer's edge.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import replace

import numpy as np

from srum.worlds.shapes.grammar import CONTAINMENT, DEPTH, SPATIAL, Group, PromptSpec
from srum.worlds.shapes.scene import (
    BACKGROUND, COLORS, SIZE_RANGES, TEXTURES, Obj, Scene, circumradius, inradius,
)

MARGIN = 0.04  # canvas border kept free (the oracle reads the background from the border)
GAP = 0.07  # between bounding boxes of free objects
SLACK = 1.08  # bounding boxes grow by this for rotation and size jitter
FREE_SIZES = {1: (0.38, 0.48), 2: (0.31, 0.37), 3: (0.24, 0.29), 4: (0.22, 0.26)}
RELATION_SIZES = (0.28, 0.34)


def sample_scene(spec: PromptSpec, rng: np.random.Generator, avoid: Collection[tuple[str, str]] = ()) -> Scene:
    """A random scene satisfying `spec`. Unstated colours and textures are drawn at random, never making a pair in
    `avoid` (e.g. {("red", "triangle"), ("striped", "circle")}: held-out combinations kept out of training images).
    """
    if spec.relation in DEPTH:
        return _depth_scene(spec, rng, avoid)
    if spec.relation in CONTAINMENT:
        return _containment_scene(spec, rng, avoid)
    objs = [_realise(g, rng, avoid) for g in spec.groups for _ in range(g.n)]
    owner = [i for i, g in enumerate(spec.groups) for _ in range(g.n)]
    sizes = RELATION_SIZES if spec.relation in SPATIAL else FREE_SIZES[min(len(objs), 4)]
    for _ in range(20):
        objs = [o if spec.groups[k].size else replace(o, size=float(rng.uniform(*sizes)))
                for o, k in zip(objs, owner)]
        placed = _place(objs, rng, lambda pos: _relation_ok(spec.relation, pos, owner))
        if placed is not None:
            return Scene(tuple(placed), BACKGROUND)
        sizes = (sizes[0] * 0.93, sizes[1] * 0.93)
    raise RuntimeError(f"could not lay out {spec}; too many or too large objects for the canvas")


def _realise(g: Group, rng: np.random.Generator, avoid: Collection[tuple[str, str]],
             exclude_colors: Collection[str] = ()) -> Obj:
    """An object with the group's stated attributes and random unstated ones (placement comes later)."""
    colors = [c for c in COLORS if (c, g.shape) not in avoid and c not in exclude_colors]
    textures = [t for t in TEXTURES if (t, g.shape) not in avoid]
    color = g.color or colors[int(rng.integers(len(colors)))]
    texture = g.texture or textures[int(rng.integers(len(textures)))]
    size = float(rng.uniform(*SIZE_RANGES[g.size])) if g.size else 0.3
    return Obj(shape=g.shape, color=color, texture=texture, size=size)


def _bbox(o: Obj, x: float, y: float) -> tuple[float, float, float, float]:
    if o.shape == "triangle":  # centroid is 2/3 down from the apex
        r = circumradius("triangle", o.size) * SLACK
        return x - 0.866 * r, y - r, x + 0.866 * r, y + 0.5 * r
    h = (o.size / 2 if o.shape == "circle" else circumradius("square", o.size) / math.sqrt(2)) * SLACK
    return x - h, y - h, x + h, y + h


def _place(objs: list[Obj], rng: np.random.Generator, ok, tries: int = 400) -> list[Obj] | None:
    """Rejection sampling of centres: inside the margin, boxes GAP apart, and `ok(positions)` true."""
    for _ in range(tries):
        pos, boxes = [], []
        for o in objs:
            x0, y0, x1, y1 = _bbox(o, 0.0, 0.0)
            lo_x, hi_x = MARGIN - x0, 1 - MARGIN - x1
            lo_y, hi_y = MARGIN - y0, 1 - MARGIN - y1
            if lo_x > hi_x or lo_y > hi_y:
                return None
            x, y = float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y))
            box = _bbox(o, x, y)
            if any(_overlap(box, b) for b in boxes):
                break
            pos.append((x, y))
            boxes.append(box)
        else:
            if ok(pos):
                return [replace(o, x=x, y=y) for o, (x, y) in zip(objs, pos)]
    return None


def _overlap(a, b) -> bool:
    return not (a[2] + GAP <= b[0] or b[2] + GAP <= a[0] or a[3] + GAP <= b[1] or b[3] + GAP <= a[1])


def _relation_ok(relation: str | None, pos: list[tuple[float, float]], owner: list[int]) -> bool:
    """Every (group-0 object, group-1 object) pair shows the relation clearly."""
    if relation is None:
        return True
    for (xa, ya), ka in zip(pos, owner):
        for (xb, yb), kb in zip(pos, owner):
            if ka != 0 or kb != 1:
                continue
            dx, dy = xb - xa, yb - ya  # B relative to A; y grows downwards
            main, other = {"left": (dx, dy), "right": (-dx, dy), "above": (dy, dx), "below": (-dy, dx)}[relation]
            if main < 0.2 or abs(main) < 1.3 * abs(other):
                return False
    return True


# Edge-midpoint directions (degrees, counter-clockwise, y up) and how far the occluder may reach along the edge.
_ANCHORS = {"square": (0.0, 90.0, 180.0, 270.0), "triangle": (30.0, 150.0, 270.0)}
_SIDEWAYS = {"circle": 1.0, "square": 0.71, "triangle": 0.87}
_WIDE_OK = {("square", "square"), ("square", "triangle"), ("circle", "triangle")}


def _depth_scene(spec: PromptSpec, rng: np.random.Generator, avoid) -> Scene:
    front_g, back_g = spec.groups if spec.relation == "front" else spec.groups[::-1]
    back = _realise(back_g, rng, avoid)
    front = _realise(front_g, rng, avoid, exclude_colors=(back.color,))
    for _ in range(50):
        d_back = float(rng.uniform(0.40, 0.48))
        if back.shape == "circle":
            angle, dist, reach = float(rng.uniform(0, 360)), d_back / 2, d_back / 2
        elif back.shape == "square":
            angle, dist = float(rng.choice(_ANCHORS["square"])), inradius("square", d_back)
            reach = dist  # half the edge
        else:
            angle, dist = float(rng.choice(_ANCHORS["triangle"])), inradius("triangle", d_back)
            reach = 0.866 * circumradius("triangle", d_back)  # half the side
        # the occluder's half-extent along the edge is u·reach; a square reaches 0.71 and a triangle 0.87 of its
        # circumradius sideways, so those may be drawn larger than a circle
        # (on a circle a square's corners would cut a chord off the hull, and on a triangle a wide occluder would
        # cut the back object in pieces, so those stay within the circumradius)
        sideways = _SIDEWAYS[front.shape] if (back.shape, front.shape) in _WIDE_OK else 1.0
        half = float(rng.uniform(0.6, 0.72)) * reach / sideways
        d_front = half / circumradius(front.shape, 1.0)
        fx, fy = dist * math.cos(math.radians(angle)), -dist * math.sin(math.radians(angle))
        b, f = replace(back, size=d_back, depth=1.0), replace(front, size=d_front, depth=0.0)
        placed = _fit([(b, 0.0, 0.0), (f, fx, fy)], rng)
        if placed is not None:
            return Scene(tuple(placed), BACKGROUND)
    raise RuntimeError(f"could not lay out {spec}")


def _containment_scene(spec: PromptSpec, rng: np.random.Generator, avoid) -> Scene:
    inner_g, outer_g = spec.groups if spec.relation == "inside" else spec.groups[::-1]
    outer = _realise(outer_g, rng, avoid)
    inner = _realise(inner_g, rng, avoid, exclude_colors=(outer.color,))
    for _ in range(50):
        d_outer = float(rng.uniform(0.55, 0.60) if outer.shape == "triangle" else rng.uniform(0.50, 0.58))
        room = inradius(outer.shape, d_outer)
        d_inner = float(rng.uniform(0.58, 0.66)) * room / circumradius(inner.shape, 1.0)
        jx, jy = rng.uniform(-0.05, 0.05, 2) * room
        o, i = replace(outer, size=d_outer, depth=1.0), replace(inner, size=d_inner, depth=0.0)
        placed = _fit([(o, 0.0, 0.0), (i, float(jx), float(jy))], rng)
        if placed is not None:
            return Scene(tuple(placed), BACKGROUND)
    raise RuntimeError(f"could not lay out {spec}")


def _fit(parts: list[tuple[Obj, float, float]], rng: np.random.Generator) -> list[Obj] | None:
    """Translate a rigid group of objects (relative offsets) to a random spot inside the margin."""
    boxes = [_bbox(o, x, y) for o, x, y in parts]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    lo_x, hi_x, lo_y, hi_y = MARGIN - x0, 1 - MARGIN - x1, MARGIN - y0, 1 - MARGIN - y1
    if lo_x > hi_x or lo_y > hi_y:
        return None
    tx, ty = float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y))
    return [replace(o, x=x + tx, y=y + ty) for o, x, y in parts]
