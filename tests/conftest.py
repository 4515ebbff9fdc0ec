"""Fixtures shared across the test tree: a tiny random BAGEL with the ShapesWorld vocabulary, written once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def tiny_shapes_bagel():
    """(Bagel, BagelVAE, tokenizer) of the tiny config, initialised from seed 0, with the ShapesWorld vocabulary
    on the tiny config's ids: the same weights every time."""
    from srum.models.bagel.config import BagelConfig
    from srum.models.bagel.model import Bagel
    from srum.models.bagel.vae import BagelVAE
    from srum.worlds.shapes.model import shapes_tokenizer

    torch.manual_seed(0)
    cfg = BagelConfig.tiny()
    return Bagel(cfg), BagelVAE(cfg.vae_config), shapes_tokenizer(cfg)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint folder of `tiny_shapes_bagel()` (srum format), shared by the session: tests read it only."""
    from srum.models.bagel.weights import save_bagel

    folder = tmp_path_factory.mktemp("tiny-checkpoint")
    save_bagel(folder, *tiny_shapes_bagel())
    return folder
