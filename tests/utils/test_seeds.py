"""derive_seed is CPython's tuple hash of ints, written out: the streams pretraining seeded with hash() keep their
values, now without depending on hash()."""

from __future__ import annotations

import random

from srum.utils.seeds import derive_seed


def test_equals_the_tuple_hash_it_replaces():
    rng = random.Random(0)
    cases = [(0, 1, -1), (0, 2, 123_456), (-1,), (), (2**62, -(2**62), 7), (2**61 - 1, 2**61)]
    cases += [tuple(rng.randint(-10**20, 10**20) for _ in range(rng.randint(1, 5))) for _ in range(500)]
    for parts in cases:
        assert derive_seed(*parts) == hash(parts) % 2**63, parts


def test_hand_computed_value_and_range():
    # one lane by hand: acc = P5 + 0·P2, rotated left 31, times P1, plus len ^ P5 ^ 3527539 (mod 2**64)
    p1, p5, mask = 11400714785074694791, 2870177450012600261, 2**64 - 1
    acc = (((p5 << 31) | (p5 >> 33)) & mask) * p1 & mask
    acc = (acc + (1 ^ p5 ^ 3527539)) & mask
    assert derive_seed(0) == (acc - 2**64 if acc >= 2**63 else acc) % 2**63
    assert all(0 <= derive_seed(s, 2, k) < 2**63 for s in range(3) for k in range(50))
