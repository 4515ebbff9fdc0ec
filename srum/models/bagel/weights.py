"""Checkpoint folders: strict loading by official parameter names, and our own save format.

Two layouts load:
- the official BAGEL-7B-MoT release: `llm_config.json`, `vit_config.json`, `ema.safetensors`,
  `ae.safetensors` (FLUX VAE, official names) and the Qwen2.5 tokenizer files;
- ours (also the official tiny reference's): `config.json` (`BagelConfig`), `model.safetensors`
  (official names), `vae.safetensors` (official or diffusers names), optional tokenizer files.
Loading is strict: any missing, unexpected or mis-shaped tensor fails with the names listed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from srum.models.bagel.config import BagelConfig
from srum.models.bagel.model import Bagel
from srum.models.bagel.vae import BagelVAE, is_official_vae_state, vae_params_from_official_state
from srum.models.bagel.sampling import GuidanceParams
from srum.utils.io import atomic_path, atomic_write_json

logger = logging.getLogger(__name__)

SAMPLER_CONFIG = "srum_sampler.json"  # our own name: transformers reads generation_config.json as its GenerationConfig
LEGACY_SAMPLER_CONFIG = "generation_config.json"  # where folders written before srum_sampler.json kept it


class CheckpointMismatchError(RuntimeError):
    """The tensors in a checkpoint file do not match the model's parameter names or shapes."""


@dataclass
class BagelCheckpoint:
    config: BagelConfig
    model: Bagel
    vae: BagelVAE
    tokenizer: PreTrainedTokenizerBase | None


def load_generation_config(folder: str | Path) -> GuidanceParams | None:
    """The sampler settings a checkpoint recommends (`srum_sampler.json`), if it ships them."""
    path = Path(folder) / SAMPLER_CONFIG
    if not path.is_file():
        path = Path(folder) / LEGACY_SAMPLER_CONFIG
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    data["cfg_interval"] = tuple(data["cfg_interval"])
    return GuidanceParams(**data)


def check_state_names(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], source: str) -> None:
    """Raise `CheckpointMismatchError` listing (first 10 of) missing, unexpected and mis-shaped names."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = sorted(k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k]))
    if not (missing or unexpected or shapes):
        return
    parts = [f"{source} does not match the BAGEL parameter names:"]
    for title, names in (("missing", missing), ("unexpected", unexpected)):
        if names:
            parts.append(f"  {len(names)} {title}: " + ", ".join(names[:10]) + (" ..." if len(names) > 10 else ""))
    if shapes:
        parts.append(f"  {len(shapes)} with wrong shape: " + ", ".join(
            f"{k} {tuple(found[k])} != {tuple(expected[k])}" for k in shapes[:10]))
    raise CheckpointMismatchError("\n".join(parts))


def _file_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {what}")
    return path


def check_bagel_folder(folder: Path) -> tuple[Path, Path]:
    """The weights and VAE files of a BAGEL folder (either layout); FileNotFoundError names what is missing."""
    if not folder.is_dir():
        raise FileNotFoundError(f"BAGEL checkpoint folder {folder} does not exist")
    if (folder / "llm_config.json").is_file():
        weights = _require(folder / "ema.safetensors", "the official release keeps the BAGEL weights in ema.safetensors")
        vae_file = _require(folder / "ae.safetensors", "the official release keeps the FLUX VAE in ae.safetensors")
        _require(folder / "vit_config.json", "the official release describes its ViT in vit_config.json")
        return weights, vae_file
    if (folder / "config.json").is_file():
        return (_require(folder / "model.safetensors", "expected the BAGEL weights beside config.json"),
                _require(folder / "vae.safetensors", "expected the VAE weights beside config.json"))
    raise FileNotFoundError(
        f"{folder} has neither llm_config.json (official BAGEL release) nor config.json (srum checkpoint)")


def load_bagel(
    folder: str | Path,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    vae_dtype: torch.dtype | None = None,
) -> BagelCheckpoint:
    """Load a BAGEL checkpoint folder (either layout) strictly onto `device` in `dtype`."""
    folder = Path(folder)
    weights, vae_file = check_bagel_folder(folder)
    if (folder / "llm_config.json").is_file():
        config = BagelConfig.from_official(folder, vae_params_from_official_state(load_file(str(vae_file))))
    else:
        config = BagelConfig.load(folder / "config.json")

    with torch.device("meta"):
        model = Bagel(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_state_names(expected, _file_shapes(weights), str(weights))
    state = {k: v.to(dtype) for k, v in load_file(str(weights), device=str(device)).items()}
    model.load_state_dict(state, strict=True, assign=True)
    # Non-persistent buffers (RoPE frequencies) are not in the file: rebuild them for real.
    from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding
    model.language_model.model.rotary_emb = Qwen2RotaryEmbedding(config.llm_config).to(device)
    model.eval()

    vae = BagelVAE(config.vae_config)
    vae_state = load_file(str(vae_file))
    if is_official_vae_state(vae_state):
        missing, unexpected = vae.load_official_state(vae_state)
        if missing or unexpected:
            raise CheckpointMismatchError(f"{vae_file}: missing {missing[:10]}, unexpected {unexpected[:10]}")
    else:
        check_state_names({k: tuple(v.shape) for k, v in vae.model.state_dict().items()},
                          {k: tuple(v.shape) for k, v in vae_state.items()}, str(vae_file))
        vae.model.load_state_dict(vae_state, strict=True)
    vae.to(device=device, dtype=vae_dtype or dtype).eval()

    # An empty config: config.json is BAGEL's (model_type bagel, unknown to transformers, which would warn on reading
    # it); the tokenizer's class comes from tokenizer_config.json.
    tokenizer = (AutoTokenizer.from_pretrained(str(folder), config=PretrainedConfig())
                 if (folder / "tokenizer.json").is_file() else None)
    logger.info("loaded BAGEL folder=%s params=%d dtype=%s tokenizer=%s", folder,
                sum(p.numel() for p in model.parameters()), dtype, tokenizer is not None)
    return BagelCheckpoint(config, model, vae, tokenizer)


def save_bagel(folder: str | Path, model: Bagel, vae: BagelVAE,
               tokenizer: PreTrainedTokenizerBase | None = None, guidance: GuidanceParams | None = None,
               state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """Write `config.json`, `model.safetensors`, `vae.safetensors` (+ tokenizer, sampler defaults), atomically.

    `state_dict` replaces `model.state_dict()` when the module's own parameters are sharded (ZeRO-3).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save(folder / "config.json")
    if guidance is not None:
        atomic_write_json(folder / SAMPLER_CONFIG, dataclasses.asdict(guidance))
    for name, state in (("model.safetensors", state_dict if state_dict is not None else model.state_dict()),
                        ("vae.safetensors", vae.model.state_dict())):
        state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
        with atomic_path(folder / name) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))
