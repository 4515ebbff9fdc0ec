"""Fixtures: the official tiny reference (from ../shared, skipped where absent) and tiny random models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from srum.models.bagel.config import BagelConfig
from srum.models.bagel.model import Bagel
from srum.models.bagel.unified import BagelUnified
from srum.models.bagel.vae import BagelVAE
from srum.worlds.shapes.model import shapes_tokenizer

REFERENCE_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "bagel-tiny"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE_DIR / "reference.safetensors").is_file():
        pytest.skip(f"official BAGEL reference outputs not found at {REFERENCE_DIR} (they live in ../shared)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def ref(reference_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(reference_dir / "reference.safetensors"))


@pytest.fixture(scope="session")
def ref_bf16(reference_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(reference_dir / "reference_bf16.safetensors"))


def make_tiny(seed: int = 0) -> tuple[Bagel, BagelVAE]:
    torch.manual_seed(seed)
    config = BagelConfig.tiny()
    return Bagel(config).eval(), BagelVAE(config.vae_config).eval()


def word_tokenizer(config: BagelConfig):
    """ShapesWorld's word-level tokenizer, on `config`'s special-token ids and vocabulary size."""
    return shapes_tokenizer(config)


@pytest.fixture
def tiny() -> tuple[Bagel, BagelVAE]:
    return make_tiny()


@pytest.fixture
def tiny_unified(tiny) -> BagelUnified:
    model, vae = tiny
    return BagelUnified(model, vae, word_tokenizer(model.config))
