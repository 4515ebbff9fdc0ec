"""The good / bad / neutral token split of srum.evaluation.separation on a tiny random BAGEL: class sizes follow
the weights, draws are paired across calls, and the classes partition the tokens' error exactly."""

from __future__ import annotations

import pytest
import torch

from srum.evaluation.separation import token_errors
from srum.models.bagel.config import BagelConfig
from srum.models.bagel.model import Bagel
from srum.models.bagel.unified import BagelUnified
from srum.models.bagel.vae import BagelVAE
from srum.training import TrainSample
from srum.worlds.shapes.model import shapes_tokenizer


@pytest.fixture(scope="module")
def unified() -> BagelUnified:
    torch.manual_seed(0)
    cfg = BagelConfig.tiny()
    return BagelUnified(Bagel(cfg).eval(), BagelVAE(cfg.vae_config), shapes_tokenizer(cfg))


def _samples(dim: int) -> list[TrainSample]:
    g = torch.Generator().manual_seed(1)
    weights = [torch.tensor([0.9, 0.7, 0.5, 0.2]), torch.tensor([0.6, 0.45, 0.1, 0.0]), torch.full((4,), 0.5)]
    return [TrainSample(i, "a red circle", torch.randn(4, dim, generator=g), w, ("color", 0))
            for i, w in enumerate(weights)]


def test_classes_follow_the_weights_and_partition_the_error(unified):
    samples = _samples(unified.model.config.patch_latent_dim)
    err = token_errors(unified, samples, (2, 2), neutral=0.5, margin=0.1, batch_size=2, repeats=3)
    # good: 0.9, 0.7 (0.6 is not above 0.6); bad: 0.2, 0.1, 0.0; neutral: the other 7 of 12 tokens; × 3 draws
    assert {c: n for c, (_, n) in err.items()} == {"good": 6, "bad": 9, "neutral": 21}
    whole = token_errors(unified, samples, (2, 2), neutral=0.5, margin=1.0, batch_size=2, repeats=3)
    assert whole["neutral"][1] == 36 and whole["good"][1] == whole["bad"][1] == 0
    weighted = sum(e * n for e, n in err.values()) / 36
    assert weighted == pytest.approx(whole["neutral"][0], rel=1e-6)  # the same draws, split three ways
    assert token_errors(unified, samples, (2, 2), neutral=0.5, margin=0.1, batch_size=2, repeats=3) == err
    assert token_errors(unified, samples, (2, 2), neutral=0.5, margin=0.1, batch_size=2, repeats=3, seed=1) != err
