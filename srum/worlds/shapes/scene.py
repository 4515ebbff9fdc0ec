"""What a ShapesWorld image contains: the vocabulary and the `Obj` / `Scene` dataclasses.

The vocabulary is chosen for the oracle, not for variety: every colour sits at its own hue (at least ~25° from its
neighbours) so hue alone names it after blur, noise and darkening; every shape has a distinct isoperimetric quotient
(4πA/P²: circle ≈ 1, square ≈ 0.79, triangle ≈ 0.60); and textures are a dark version of the object's own colour,
so a textured object is still one colour (hue is unchanged by scaling RGB) and segmentation never splits it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
TEXTURES: tuple[str, ...] = ("solid", "striped", "dotted")
SIZES: tuple[str, ...] = ("small", "big")

# RGB in [0, 1]. Hues: red 0°, orange ~28°, yellow ~55°, green ~128°, blue ~228°, purple ~279°.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.13, 0.13),
    "orange": (0.98, 0.50, 0.08),
    "yellow": (0.95, 0.88, 0.10),
    "green": (0.15, 0.68, 0.22),
    "blue": (0.15, 0.30, 0.88),
    "purple": (0.58, 0.22, 0.78),
}
COLORS: tuple[str, ...] = tuple(PALETTE)
BACKGROUND: tuple[float, float, float] = (0.94, 0.94, 0.92)

# Nominal equal-area diameters (canvas units) behind the size words, and the oracle's cut between them.
SIZE_RANGES: dict[str, tuple[float, float]] = {"small": (0.19, 0.24), "big": (0.37, 0.42)}
SIZE_THRESHOLD = 0.32

# Texture geometry in canvas units: at 64 px a stripe period is 7 px, so Gaussian blur of σ = 1 px keeps ~60 % of
# the contrast. Smaller canvases than 64 px make textures too fine for the oracle.
STRIPE_PERIOD = 0.11
DOT_SPACING = 0.11
DOT_RADIUS = 0.028
TEXTURE_DARKNESS = 0.45  # dark stripes and dots are the base colour times this


@dataclass(frozen=True)
class Obj:
    """One object on the canvas.

    `size` is the equal-area diameter in canvas units (a square of this size has the area of a circle of diameter
    `size`), so the three shapes look equally big. `x`, `y` are the area centroid in [0, 1], y pointing down.
    `depth` orders painting: larger is farther, drawn first; the nearest object is drawn last and occludes.
    `rotation` is in degrees (triangles point up at 0).
    """

    shape: str
    color: str
    texture: str = "solid"
    size: float = 0.35
    x: float = 0.5
    y: float = 0.5
    depth: float = 0.0
    rotation: float = 0.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"Obj.shape={self.shape!r}: use one of {SHAPES}")
        if self.color not in PALETTE:
            raise ValueError(f"Obj.color={self.color!r}: use one of {COLORS}")
        if self.texture not in TEXTURES:
            raise ValueError(f"Obj.texture={self.texture!r}: use one of {TEXTURES}")
        if not 0 < self.size < 1:
            raise ValueError(f"Obj.size={self.size}: give the equal-area diameter as a canvas fraction in (0, 1)")

    def extent(self) -> tuple[float, float]:
        """Half-width and half-height of the unrotated shape around (x, y), in canvas units."""
        return half_extent(self.shape, self.size)


@dataclass(frozen=True)
class Scene:
    """Objects on a plain background; `background` is RGB in [0, 1]."""

    objects: tuple[Obj, ...]
    background: tuple[float, float, float] = field(default=BACKGROUND)


# Shape geometry from the equal-area diameter d: circle radius d/2; square side √π/2·d; equilateral triangle with
# circumradius sqrt(π / (3√3))·d, centroid at (x, y), apex up.
SQUARE_SIDE = 0.8862269
TRIANGLE_CIRCUMRADIUS = 0.7776388


def half_extent(shape: str, size: float) -> tuple[float, float]:
    """Half-width, half-height of an unrotated shape (triangle: its centroid sits 2/3 of the way down)."""
    if shape == "circle":
        return size / 2, size / 2
    if shape == "square":
        return SQUARE_SIDE * size / 2, SQUARE_SIDE * size / 2
    r = TRIANGLE_CIRCUMRADIUS * size
    return r * 0.8660254, r  # apex at r above the centroid, base at r/2 below: the bounding box is taller upwards


def circumradius(shape: str, size: float) -> float:
    """Distance from the centre to the farthest point of the shape."""
    if shape == "circle":
        return size / 2
    if shape == "square":
        return SQUARE_SIDE * size / 2 * 1.4142136
    return TRIANGLE_CIRCUMRADIUS * size


def inradius(shape: str, size: float) -> float:
    """Radius of the largest circle around the centre that stays inside the shape."""
    if shape == "circle":
        return size / 2
    if shape == "square":
        return SQUARE_SIDE * size / 2
    return TRIANGLE_CIRCUMRADIUS * size / 2


def vertices(shape: str, x: float, y: float, size: float, rotation: float) -> list[tuple[float, float]]:
    """Polygon corners of a square or triangle in canvas units (y down; rotation in degrees, counter-clockwise)."""
    if shape == "square":
        r, start = circumradius("square", size), 45.0
        angles = [start + 90 * k for k in range(4)]
    elif shape == "triangle":
        r, start = circumradius("triangle", size), 90.0
        angles = [start + 120 * k for k in range(3)]
    else:
        raise ValueError(f"vertices() is for polygons; {shape!r} is drawn as an ellipse")
    out = []
    for a in angles:
        t = math.radians(a + rotation)
        out.append((x + r * math.cos(t), y - r * math.sin(t)))
    return out
