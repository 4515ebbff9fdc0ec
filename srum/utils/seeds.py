"""Seeds derived from several integers, the same in every process, on every machine and Python version.

Python's `hash()` is an implementation detail (and randomised for strings); this is CPython's tuple hash of ints written
out (xxHash-style lanes, 64-bit), so streams seeded the old way keep their exact values.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1
_P1, _P2, _P5 = 11400714785074694791, 14029467366897019727, 2870177450012600261
_MODULUS = (1 << 61) - 1  # CPython hashes an int n as n mod (2**61 − 1)


def _int_hash(n: int) -> int:
    h = n % _MODULUS if n >= 0 else -((-n) % _MODULUS)
    return -2 if h == -1 else h  # -1 is CPython's error value


def derive_seed(*parts: int) -> int:
    """A seed in [0, 2**63) from integers (e.g. base seed, stage, step)."""
    acc = _P5
    for part in parts:
        acc = (acc + (_int_hash(int(part)) & _MASK) * _P2) & _MASK
        acc = ((acc << 31) | (acc >> 33)) & _MASK
        acc = (acc * _P1) & _MASK
    acc = (acc + (len(parts) ^ (_P5 ^ 3527539))) & _MASK
    if acc == _MASK:
        acc = 1546275796
    signed = acc - (1 << 64) if acc >= 1 << 63 else acc
    return signed % (1 << 63)
