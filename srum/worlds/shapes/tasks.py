"""What the tiny model learns and is asked in ShapesWorld: question templates and example generators.

The same templates serve pretraining, the understanding benchmark and SRUM's self-judge, so the
judge asks exactly the questions the model was taught:
- global match: image + "does this image show {prompt}?" → "yes" / "no" (hard negatives from `mismatch`);
- region match: an object's crop + "does this region show {object}?" → "yes" / "no" (the object phrase
  names the shape and a random subset of colour and texture; negatives change one named attribute);
- description: image + "describe the image." → every object with all its attributes, left to right;
- region naming: crop + "what is in this region?" → "a red striped circle" (crops are resized: no size).
Images are generated from scene specs here (this is training data); the oracle never sees specs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from srum.worlds.shapes.grammar import CATEGORIES, Group, PromptSpec, mismatch, sample_spec, to_text
from srum.worlds.shapes.layout import sample_scene
from srum.worlds.shapes.render import render
from srum.worlds.shapes.scene import SIZE_THRESHOLD, Obj, Scene, half_extent
from srum.worlds.shapes.splits import HELD_OUT, has_held_out

YES, NO = "yes", "no"
DESCRIBE = "describe the image."
NAME_REGION = "what is in this region?"


def global_question(prompt: str) -> str:
    return f"does this image show {prompt.rstrip('.')}?"


def region_question(phrase: str) -> str:
    return f"does this region show {phrase}?"


def object_phrase(obj: Obj) -> str:
    """Every attribute of one object: "a big red striped circle"."""
    return partial_phrase(obj, {"color", "texture", "size"})


def describe(scene: Scene) -> str:
    """All objects, left to right (ties top to bottom), fully specified."""
    phrases = [object_phrase(o) for o in sorted(scene.objects, key=lambda o: (round(o.x, 2), o.y))]
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def object_box(obj: Obj, size: int, margin: float = 0.06) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) around an object with a margin, clipped to the canvas."""
    r = max(half_extent(obj.shape, obj.size)) * 1.1 + margin
    x0, y0 = max(0, int((obj.x - r) * size)), max(0, int((obj.y - r) * size))
    x1, y1 = min(size, int(np.ceil((obj.x + r) * size))), min(size, int(np.ceil((obj.y + r) * size)))
    return x0, y0, x1, y1


@dataclass
class TextToImage:
    prompt: str
    image: Image.Image
    category: str


@dataclass
class QA:
    image: Image.Image
    question: str
    answer: str
    kind: str  # which template / negative type, for per-type accuracy


class ShapesTasks:
    """Draws training examples from a seeded stream.

    Attribute–shape pairs in `avoid` (default: the test split's held-out pairs) never appear, neither in
    images nor in any text, so the test split measures compositional generalisation.
    """

    def __init__(self, seed: int, image_size: int = 64, avoid: frozenset[tuple[str, str]] = HELD_OUT,
                 categories: tuple[str, ...] = CATEGORIES) -> None:
        self.rng = np.random.default_rng(seed)
        self.size = image_size
        self.avoid = avoid
        self.categories = categories

    def scene(self, single_object_p: float = 0.0) -> tuple[str, PromptSpec, Scene]:
        if self.rng.random() < single_object_p:
            category, spec = "numeracy", PromptSpec((self._single_group(),))
        else:
            category = self.categories[int(self.rng.integers(len(self.categories)))]
            spec = sample_spec(category, self.rng)
            while has_held_out(spec, self.avoid):
                spec = sample_spec(category, self.rng)
        return category, spec, sample_scene(spec, self.rng, avoid=self.avoid)

    def _single_group(self) -> Group:
        from srum.worlds.shapes.scene import COLORS, SHAPES, TEXTURES

        pick = lambda xs: xs[int(self.rng.integers(len(xs)))]  # noqa: E731
        while True:
            group = Group(pick(SHAPES), pick(COLORS), pick(TEXTURES) if self.rng.random() < 0.5 else None)
            if not has_held_out(PromptSpec((group,)), self.avoid):
                return group

    def render(self, scene: Scene) -> Image.Image:
        return render(scene, self.size, self.rng)

    def text_to_image(self, single_object_p: float = 0.0) -> TextToImage:
        category, spec, scene = self.scene(single_object_p)
        return TextToImage(to_text(spec), self.render(scene), category)

    def qa(self, single_object_p: float = 0.0, match_share: float = 0.4) -> QA:
        """One understanding example: a global match question with probability `match_share`, else a description,
        a region name or a region match question in equal shares (yes/no answers balanced)."""
        category, spec, scene = self.scene(single_object_p)
        image = self.render(scene)
        task = self.rng.random()
        if task < match_share:  # global match with hard negatives
            if self.rng.random() < 0.5:
                return self._positive(image, spec, category)
            return self._negative(image, spec, category)
        task = (task - match_share) / (1 - match_share)  # uniform in [0, 1) again
        if task < 1 / 3:
            return QA(image, DESCRIBE, describe(scene), "describe")
        obj = scene.objects[int(self.rng.integers(len(scene.objects)))]
        crop = image.crop(object_box(obj, self.size))
        if task < 2 / 3:
            return QA(crop, NAME_REGION, partial_phrase(obj, {"color", "texture"}), "region_name")
        # Region questions name a random subset of the object's attributes, as prompts do ("a red circle").
        # Never its size: a crop is resized for the ViT, so size cannot be seen in it.
        stated = {k for k in ("color", "texture") if self.rng.random() < 0.6}
        if self.rng.random() < 0.5:
            return QA(crop, region_question(partial_phrase(obj, stated)), YES, "region_match")
        return QA(crop, region_question(self._other_phrase(obj, stated)), NO, "region_mismatch")

    def match_pair(self, single_object_p: float = 0.0) -> tuple[QA, QA]:
        """The true prompt and a hard negative about the same render.

        Paired, the two answers differ only by the swapped detail, so their gradients cancel everything else
        in the question: the cleanest signal for learning to check a binding rather than to say "yes".
        """
        category, spec, scene = self.scene(single_object_p)
        image = self.render(scene)
        return self._positive(image, spec, category), self._negative(image, spec, category)

    @staticmethod
    def _positive(image: Image.Image, spec: PromptSpec, category: str) -> QA:
        return QA(image, global_question(to_text(spec)), YES, f"match:{category}")

    def _negative(self, image: Image.Image, spec: PromptSpec, category: str) -> QA:
        for _ in range(20):
            neg = mismatch(spec, self.rng)
            if not has_held_out(neg, self.avoid):
                return QA(image, global_question(to_text(neg)), NO, f"mismatch:{category}")
        return self._positive(image, spec, category)  # every negative was held out

    def _other_phrase(self, obj: Obj, stated: set[str]) -> str:
        """A phrase naming `stated` attributes (and the shape) with one of them changed: a binding-style negative.

        Changes that would name a held-out pair are never made; if the named attributes allow none, colour and
        texture are named too (some change of those is always allowed).
        """
        from srum.worlds.shapes.scene import COLORS, SHAPES, TEXTURES

        options = {"shape": SHAPES, "color": COLORS, "texture": TEXTURES}
        for named in (stated, {"color", "texture"}):
            candidates = [replace(obj, **{f: v}) for f in ("shape", *sorted(named)) for v in options[f]
                          if v != getattr(obj, f)]
            candidates = [c for c in candidates
                          if (c.color, c.shape) not in self.avoid and (c.texture, c.shape) not in self.avoid]
            if candidates:
                return partial_phrase(candidates[int(self.rng.integers(len(candidates)))], named)
        raise RuntimeError(f"no allowed negative phrase for {obj}")  # unreachable with ≥ 3 colours per shape


def _size_word(obj: Obj) -> str:
    return "big" if obj.size > SIZE_THRESHOLD else "small"


def partial_phrase(obj: Obj, stated: set[str]) -> str:
    """The object's phrase with only the `stated` attributes (the shape is always named)."""
    group = Group(obj.shape, obj.color if "color" in stated else None, obj.texture if "texture" in stated else None,
                  _size_word(obj) if "size" in stated else None)
    return to_text(PromptSpec((group,)))


def vocabulary() -> list[str]:
    """Every word the grammar and the templates can produce, for the word-level tokenizer."""
    from srum.worlds.shapes.grammar import COUNT_WORDS, RELATION_TEXT
    from srum.worlds.shapes.scene import COLORS, SHAPES, SIZES, TEXTURES

    words = ["a", "an", "and", ",", ".", "?", YES, NO]
    words += [*COLORS, *SHAPES, *(s + "s" for s in SHAPES), *TEXTURES, *SIZES, *COUNT_WORDS.values()]
    for phrase in RELATION_TEXT.values():
        words += phrase.split()
    for template in (global_question("x"), region_question("x"), DESCRIBE, NAME_REGION):
        words += template.replace("?", " ?").replace(".", " .").split()
    return list(dict.fromkeys(w for w in words if w != "x"))
