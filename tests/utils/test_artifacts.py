"""Checked reads of run-folder files (srum/utils/artifacts.py): a damaged file gives one line naming it."""

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from srum.utils.artifacts import DamagedArtifact, check_range, read_image, read_json, read_tensors


def test_truncated_json_is_named_with_the_fix(tmp_path):
    path = tmp_path / "chunk_00003.json"
    path.write_text('[{"job": 1, "file": "images/0')
    with pytest.raises(DamagedArtifact, match=r"chunk_00003\.json: unreadable JSON .*; delete it and rerun"):
        read_json(path)


def test_truncated_or_non_finite_safetensors(tmp_path):
    path = tmp_path / "r.safetensors"
    save_file({"1": torch.ones(4)}, str(path))
    assert torch.equal(read_tensors(path)["1"], torch.ones(4))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DamagedArtifact, match=r"r\.safetensors: unreadable safetensors"):
        read_tensors(path)
    save_file({"1": torch.tensor([0.5, float("nan")])}, str(path))
    with pytest.raises(DamagedArtifact, match=r"tensor '1' has non-finite values; fix me"):
        read_tensors(path, "fix me")


def test_reward_out_of_range(tmp_path):
    check_range(tmp_path / "r", "7", torch.tensor([-1.0, 0.3, 1.0]), -1.0, 1.0)
    with pytest.raises(DamagedArtifact, match=r"'7' has values in \[0, 1000\], outside \[-1, 1\]"):
        check_range(tmp_path / "r", "7", torch.tensor([0.0, 1000.0]), -1.0, 1.0)


def test_truncated_png_fails_when_read_not_later(tmp_path):
    path = tmp_path / "000001.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(path)
    assert read_image(path).getpixel((5, 5)) == (200, 30, 30)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DamagedArtifact, match=r"000001\.png: unreadable image"):
        read_image(path)
