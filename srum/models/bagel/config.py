"""BagelConfig: every size and convention of a BAGEL model, and its `config.json` form.

The json form has the sections `llm_config` (a transformers `Qwen2Config`), `vit_config` (a
`SiglipVisionConfig`), `vae_config` (FLUX autoencoder parameters), `bagel_config` and
`special_tokens`. The official tiny reference folder uses the same layout, so it loads as is;
the official BAGEL-7B-MoT release (`llm_config.json`, `vit_config.json`) is read by `from_official`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import Qwen2Config, SiglipVisionConfig

# Sections of config.json that describe how a file was made rather than the model; read and ignored.
_INFORMATIONAL_SECTIONS = {"derived", "notes"}
MODEL_TYPE = "bagel"  # config.json's `model_type` (folders written before it was recorded have none)


@dataclass
class VaeParams:
    """FLUX-style autoencoder sizes (official `AutoEncoderParams`)."""

    resolution: int = 256
    in_channels: int = 3
    downsample: int = 8
    ch: int = 128
    out_ch: int = 3
    ch_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    num_res_blocks: int = 2
    z_channels: int = 16
    scale_factor: float = 0.3611
    shift_factor: float = 0.1159


@dataclass
class SpecialTokens:
    """Ids of the four structural tokens (Qwen2.5 ids by default)."""

    bos_token_id: int = 151644  # <|im_start|>: starts every text segment
    eos_token_id: int = 151645  # <|im_end|>: ends every text segment, stops decoding
    start_of_image: int = 151652  # <|vision_start|>
    end_of_image: int = 151653  # <|vision_end|>


@dataclass
class ImageTransformParams:
    """Resize rule: long side <= max_size, short side >= min_size, sides rounded to `stride`."""

    max_size: int
    min_size: int
    stride: int
    max_pixels: int = 14 * 14 * 9 * 1024


@dataclass
class BagelConfig:
    """All hyper-parameters of a BAGEL model.

    `max_latent_size` is the side of the latent position table (64 for the 7B-MoT release; the
    official class default of 32 does not match its checkpoint), and `vit_max_num_patch_per_side`
    the side of the ViT position table; both are also the row strides of the position ids.
    """

    llm_config: Qwen2Config
    vit_config: SiglipVisionConfig
    vae_config: VaeParams = field(default_factory=VaeParams)
    latent_patch_size: int = 2
    max_latent_size: int = 64
    vit_max_num_patch_per_side: int = 70
    connector_act: str = "gelu_pytorch_tanh"
    interpolate_pos: bool = False
    timestep_shift: float = 1.0
    special_tokens: SpecialTokens = field(default_factory=SpecialTokens)
    vit_transform: ImageTransformParams = field(
        default_factory=lambda: ImageTransformParams(max_size=980, min_size=224, stride=14)
    )
    vae_transform: ImageTransformParams = field(
        default_factory=lambda: ImageTransformParams(max_size=1024, min_size=512, stride=16)
    )

    def __post_init__(self) -> None:
        if self.interpolate_pos:
            raise ValueError("bagel_config.interpolate_pos=True is not supported: BAGEL-7B-MoT uses extrapolated ids")
        llm = self.llm_config
        if llm.hidden_size % llm.num_attention_heads:
            raise ValueError(f"llm_config.hidden_size={llm.hidden_size} is not divisible by num_attention_heads")
        if llm.num_attention_heads % llm.num_key_value_heads:
            raise ValueError("llm_config.num_attention_heads must be a multiple of num_key_value_heads")
        # BAGEL's fixed settings: transformers' attention dispatch picks SDPA for the ViT layers.
        self.vit_config._attn_implementation = "sdpa"

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.llm_config.hidden_size

    @property
    def head_dim(self) -> int:
        return self.llm_config.hidden_size // self.llm_config.num_attention_heads

    @property
    def latent_channels(self) -> int:
        return self.vae_config.z_channels

    @property
    def patch_latent_dim(self) -> int:
        """Width of one latent token: p*p*C values ordered (dy, dx, channel)."""
        return self.latent_patch_size**2 * self.vae_config.z_channels

    @property
    def latent_downsample(self) -> int:
        """Pixels per latent token along a side (16 for BAGEL)."""
        return self.vae_config.downsample * self.latent_patch_size

    # ---- json ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        llm = self.llm_config.to_dict()
        vit = self.vit_config.to_dict()
        vit.pop("_attn_implementation_autoset", None)
        return {
            "model_type": MODEL_TYPE,
            "llm_config": llm,
            "vit_config": vit,
            "vae_config": dataclasses.asdict(self.vae_config),
            "bagel_config": {
                "latent_patch_size": self.latent_patch_size,
                "max_latent_size": self.max_latent_size,
                "vit_max_num_patch_per_side": self.vit_max_num_patch_per_side,
                "connector_act": self.connector_act,
                "interpolate_pos": self.interpolate_pos,
                "timestep_shift": self.timestep_shift,
            },
            "special_tokens": dataclasses.asdict(self.special_tokens),
            "image_transforms": {
                "vit": dataclasses.asdict(self.vit_transform),
                "vae": dataclasses.asdict(self.vae_transform),
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> BagelConfig:
        known = {"llm_config", "vit_config", "vae_config", "bagel_config", "special_tokens", "image_transforms",
                 "model_type"}
        if data.get("model_type", MODEL_TYPE) != MODEL_TYPE:
            raise ValueError(f"{source}: model_type={data['model_type']!r}, not a {MODEL_TYPE} config")
        unknown = set(data) - known - _INFORMATIONAL_SECTIONS
        if unknown:
            raise ValueError(f"{source}: unknown section(s) {sorted(unknown)}; expected {sorted(known)}")
        missing = {"llm_config", "vit_config"} - set(data)
        if missing:
            raise ValueError(f"{source}: missing section(s) {sorted(missing)}")
        bagel = dict(data.get("bagel_config", {}))
        bagel.pop("visual_gen", None)  # the official flags: both paths are always built here
        bagel.pop("visual_und", None)
        allowed = {f.name for f in dataclasses.fields(cls)} - {"llm_config", "vit_config", "vae_config",
                                                              "special_tokens", "vit_transform", "vae_transform"}
        bad = set(bagel) - allowed
        if bad:
            raise ValueError(f"{source}: unknown bagel_config key(s) {sorted(bad)}; expected {sorted(allowed)}")
        transforms = data.get("image_transforms", {})
        kwargs: dict[str, Any] = dict(bagel)
        if "vit" in transforms:
            kwargs["vit_transform"] = ImageTransformParams(**transforms["vit"])
        if "vae" in transforms:
            kwargs["vae_transform"] = ImageTransformParams(**transforms["vae"])
        return cls(
            llm_config=_qwen2_config(data["llm_config"]),
            vit_config=SiglipVisionConfig(**_strip_hf_meta(data["vit_config"])),
            vae_config=VaeParams(**data.get("vae_config", {})),
            special_tokens=SpecialTokens(**data.get("special_tokens", {})),
            **kwargs,
        )

    def save(self, path: str | Path) -> None:
        from srum.utils.io import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> BagelConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no BAGEL config at {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid json: {e}") from e
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_official(cls, folder: str | Path, vae_config: VaeParams | None = None) -> BagelConfig:
        """Config of an official release folder (`llm_config.json`, `vit_config.json`, `ema.safetensors`).

        Applied as the official loader does: untied embeddings, no ViT RoPE, one ViT layer fewer than the
        json says (BAGEL uses the penultimate SigLIP layer). The two position-table sides are read from the
        weights' header (64 and 70 for 7B-MoT; the class default of 32 would not match the checkpoint).
        """
        from safetensors import safe_open

        folder = Path(folder)
        llm = json.loads((folder / "llm_config.json").read_text())
        vit = json.loads((folder / "vit_config.json").read_text())
        llm.update(tie_word_embeddings=False)
        vit["num_hidden_layers"] = vit["num_hidden_layers"] - 1
        with safe_open(str(folder / "ema.safetensors"), framework="pt") as f:
            latent_rows = f.get_slice("latent_pos_embed.pos_embed").get_shape()[0]
            vit_rows = f.get_slice("vit_pos_embed.pos_embed").get_shape()[0]
        return cls(llm_config=_qwen2_config(llm), vit_config=SiglipVisionConfig(**_strip_hf_meta(vit)),
                   vae_config=vae_config or VaeParams(), max_latent_size=math.isqrt(latent_rows),
                   vit_max_num_patch_per_side=math.isqrt(vit_rows), timestep_shift=1.0)

    # ---- presets ---------------------------------------------------------------------------
    @classmethod
    def bagel_7b_mot(cls) -> BagelConfig:
        """Sizes of the BAGEL-7B-MoT release (Qwen2.5-7B decoder, SigLIP-so400m ViT, FLUX VAE)."""
        llm = _qwen2_config(dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                                 num_attention_heads=28, num_key_value_heads=4, rope_theta=1e6, rms_norm_eps=1e-6,
                                 max_position_embeddings=32768, tie_word_embeddings=False))
        vit = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=26,
                                 num_attention_heads=16, patch_size=14, image_size=980,
                                 hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
        return cls(llm_config=llm, vit_config=vit)

    @classmethod
    def tiny(cls, vocab_size: int = 512) -> BagelConfig:
        """The tiny random configuration of the official reference outputs (CPU tests)."""
        llm = _qwen2_config(dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, rope_theta=1e6, rms_norm_eps=1e-6,
                                 tie_word_embeddings=False))
        vit = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                 patch_size=14, image_size=112, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
        vae = VaeParams(resolution=64, ch=32, ch_mult=[1, 1, 1, 1], num_res_blocks=1)
        return cls(llm_config=llm, vit_config=vit, vae_config=vae, max_latent_size=8, vit_max_num_patch_per_side=8,
                   special_tokens=SpecialTokens(vocab_size - 12, vocab_size - 11, vocab_size - 10, vocab_size - 9),
                   vit_transform=ImageTransformParams(max_size=112, min_size=28, stride=14),
                   vae_transform=ImageTransformParams(max_size=128, min_size=32, stride=16))


PRESETS = {"tiny": BagelConfig.tiny, "7b-mot": BagelConfig.bagel_7b_mot}


def _strip_hf_meta(d: dict[str, Any]) -> dict[str, Any]:
    """Drop keys that transformers writes about itself and that must not be passed back in."""
    return {k: v for k, v in d.items() if k not in {"transformers_version", "_attn_implementation_autoset",
                                                     "qk_norm", "layer_module", "freeze_und", "rope"}}


def _qwen2_config(d: dict[str, Any]) -> Qwen2Config:
    d = _strip_hf_meta(d)
    if d.get("use_sliding_window"):
        raise ValueError("llm_config.use_sliding_window=True is not supported by BAGEL")
    return Qwen2Config(**d)
