"""Reading T2I-CompBench prompts by rule: noun phrases, BLIP questions, detector queries, relations and counts."""

from __future__ import annotations

import re
from collections.abc import Sequence

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
