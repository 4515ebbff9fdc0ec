"""Checkpoint folders: exact save/load roundtrip, strict names with listed errors, the official release layout."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from srum.models.bagel.config import BagelConfig
from srum.models.bagel.weights import CheckpointMismatchError, load_bagel, save_bagel

from .conftest import word_tokenizer


def test_roundtrip_is_exact(tiny, tmp_path):
    model, vae = tiny
    save_bagel(tmp_path, model, vae, word_tokenizer(model.config))
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors", "vae.safetensors",
                                                     "tokenizer.json"}
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files
    ck = load_bagel(tmp_path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), ck.model.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    for a, b in zip(vae.model.state_dict().values(), ck.vae.model.state_dict().values()):
        assert torch.equal(a, b)
    assert ck.config.to_dict() == model.config.to_dict()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "bagel"
    assert ck.tokenizer.encode("a red circle", add_special_tokens=False) == \
        word_tokenizer(model.config).encode("a red circle", add_special_tokens=False)


def test_wrong_and_missing_names_are_listed(tiny, tmp_path):
    model, vae = tiny
    save_bagel(tmp_path, model, vae)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["llm2vae.weight_renamed"] = state.pop("llm2vae.weight")
    del state["connector.fc1.bias"]
    state["vae2llm.bias"] = torch.zeros(3)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError) as err:
        load_bagel(tmp_path)
    msg = str(err.value)
    assert "2 missing: connector.fc1.bias, llm2vae.weight" in msg
    assert "1 unexpected: llm2vae.weight_renamed" in msg
    assert "vae2llm.bias (3,) != (64,)" in msg


def test_missing_files_say_what_is_wrong(tmp_path, tiny):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_bagel(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="neither llm_config.json"):
        load_bagel(tmp_path)
    model, vae = tiny
    save_bagel(tmp_path, model, vae)
    (tmp_path / "vae.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="vae.safetensors"):
        load_bagel(tmp_path)


def test_official_release_layout(reference_dir, tmp_path):
    """llm_config.json / vit_config.json (+1 ViT layer) / ema.safetensors / ae.safetensors, official names."""
    ref_cfg = json.loads((reference_dir / "config.json").read_text())
    vit = dict(ref_cfg["vit_config"], num_hidden_layers=ref_cfg["vit_config"]["num_hidden_layers"] + 1)
    (tmp_path / "llm_config.json").write_text(json.dumps(ref_cfg["llm_config"]))
    (tmp_path / "vit_config.json").write_text(json.dumps(vit))
    shutil.copy(reference_dir / "model.safetensors", tmp_path / "ema.safetensors")
    shutil.copy(reference_dir / "vae.safetensors", tmp_path / "ae.safetensors")
    official = load_bagel(tmp_path)
    ours = load_bagel(reference_dir)
    assert official.config.vit_config.num_hidden_layers == 2  # penultimate SigLIP layer: json says 3
    assert official.config.max_latent_size == 8 and official.config.vit_max_num_patch_per_side == 8
    assert official.config.vae_config.ch == 32 and official.config.vae_config.num_res_blocks == 1
    for a, b in zip(official.model.state_dict().values(), ours.model.state_dict().values()):
        assert torch.equal(a, b)


def test_config_json_roundtrip_and_errors(tmp_path):
    cfg = BagelConfig.tiny()
    cfg.save(tmp_path / "config.json")
    assert BagelConfig.load(tmp_path / "config.json").to_dict() == cfg.to_dict()
    data = cfg.to_dict()
    data["bagel_config"]["max_latent_siz"] = 3
    with pytest.raises(ValueError, match="max_latent_siz"):
        BagelConfig.from_dict(data)
    assert BagelConfig.bagel_7b_mot().patch_latent_dim == 64
    assert BagelConfig.bagel_7b_mot().latent_downsample == 16


def test_config_of_another_model_type_is_refused(tiny, tmp_path):
    model, vae = tiny
    save_bagel(tmp_path, model, vae)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, "model_type": "qwen2_vl"}))
    with pytest.raises(ValueError, match="model_type='qwen2_vl', not a bagel config"):
        load_bagel(tmp_path)


def test_sampler_settings_travel_in_our_own_file(tiny, tmp_path):
    from srum.models.bagel.sampling import GuidanceParams
    from srum.models.bagel.weights import load_generation_config

    model, vae = tiny
    save_bagel(tmp_path, model, vae, guidance=GuidanceParams(num_timesteps=7, cfg_text_scale=2.5))
    assert (tmp_path / "srum_sampler.json").is_file() and not (tmp_path / "generation_config.json").exists()
    assert load_generation_config(tmp_path) == GuidanceParams(num_timesteps=7, cfg_text_scale=2.5)
    (tmp_path / "srum_sampler.json").rename(tmp_path / "generation_config.json")  # a folder written before the rename
    assert load_generation_config(tmp_path).num_timesteps == 7
