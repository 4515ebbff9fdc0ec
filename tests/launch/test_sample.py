"""`launch/sample.py` end to end on a tiny checkpoint folder written by `save_bagel`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from srum.models.bagel.weights import save_bagel

from ..models.bagel.conftest import make_tiny, word_tokenizer

ROOT = Path(__file__).resolve().parents[2]


def test_sample_cli(tmp_path):
    model, vae = make_tiny()
    save_bagel(tmp_path / "ck", model, vae, word_tokenizer(model.config))
    cmd = [sys.executable, str(ROOT / "launch" / "sample.py"), "--checkpoint", str(tmp_path / "ck"),
           "--prompt", "a red circle", "--prompt", "a blue square", "--out", str(tmp_path / "out"),
           "--size", "32", "--steps", "4", "--seed", "3"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    records = json.loads((tmp_path / "out" / "samples.json").read_text())
    assert [r["seed"] for r in records] == [3, 4]
    assert Image.open(tmp_path / "out" / records[1]["file"]).size == (32, 32)
