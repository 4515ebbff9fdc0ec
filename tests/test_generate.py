"""Reusing another run's generated samples: the settings check and the linking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from srum.config import config_to_dict, load_config
from srum.generate import check_reusable, reuse_generated
from srum.utils.io import write_manifest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "shapes.yaml"


def _finished_generate_folder(path, cfg_dict, chunks: int = 2):
    """A generate folder as generate_stage and the pipeline leave it: images, latents, markers, manifest."""
    (path / "images").mkdir(parents=True)
    for k in range(chunks):
        records = []
        for j in range(2):
            name = f"images/{2 * k + j:06d}.png"
            (path / name).write_bytes(b"png %d" % (2 * k + j))
            records.append({"job": 2 * k + j, "file": name})
        (path / f"chunk_{k:05d}.safetensors").write_bytes(b"latents %d" % k)
        (path / f"chunk_{k:05d}.json").write_text(json.dumps(records))
    write_manifest(path, cfg_dict, extra={"stage": "generate"})
    return path


def test_same_settings_are_reusable_and_differences_are_named(tmp_path):
    cfg = config_to_dict(load_config(RECIPE))
    source = _finished_generate_folder(tmp_path / "a", cfg)
    check_reusable(source, config_to_dict(load_config(RECIPE, [f"generate.reuse_from={source}",
                                                               "reward.binarize=true"])))  # after generation: fine
    other = config_to_dict(load_config(RECIPE, ["generate.seed=7", "generate.cfg_text_scale=2.0"]))
    with pytest.raises(ValueError, match=r"generate\.cfg_text_scale, generate\.seed differ"):
        check_reusable(source, other)
    with pytest.raises(ValueError, match=r"model\.path"):
        check_reusable(source, config_to_dict(load_config(RECIPE, ["model.path=elsewhere"])))
    with pytest.raises(FileNotFoundError, match="never finished"):
        check_reusable(tmp_path / "missing", cfg)


def test_reuse_links_every_chunk_and_keeps_existing_files(tmp_path):
    source = _finished_generate_folder(tmp_path / "a", config_to_dict(load_config(RECIPE)), chunks=3)
    out = tmp_path / "b"
    (out / "images").mkdir(parents=True)
    (out / "images" / "000000.png").write_bytes(b"mine")
    assert reuse_generated(source, out) == 3
    assert (out / "images" / "000000.png").read_bytes() == b"mine"  # never overwritten
    for k in range(3):
        assert (out / f"chunk_{k:05d}.json").read_text() == (source / f"chunk_{k:05d}.json").read_text()
        assert (out / f"chunk_{k:05d}.safetensors").read_bytes() == b"latents %d" % k
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{i:06d}.png" for i in range(6)]
    assert (out / "images" / "000005.png").read_bytes() == b"png 5"
    assert not (out / "manifest.json").exists()  # the reusing run writes its own after its generate stage
