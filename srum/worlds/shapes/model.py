"""The tiny BAGEL of ShapesWorld: the same `srum.models.bagel` code at CPU scale, and its tokenizer.

Sizes (chosen by measurement on 2 CPU cores): a 4-layer 192-wide MoT decoder, a 3-layer ViT on
8-px patches (64 tokens for a 64-px image), and a FLUX-style `AutoencoderKL` with two downsamplings
(64 px → 16×16×8 latents), so with BAGEL's 2×2 latent patches an image is 8×8 = 64 tokens of 32 values.
The latent scale and shift are measured on renders after the autoencoder is trained.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast

from srum.models.bagel.config import BagelConfig, ImageTransformParams, SpecialTokens, VaeParams, _qwen2_config
from srum.models.tokenizer import build_word_tokenizer
from srum.worlds.shapes.tasks import vocabulary

VOCAB_SIZE = 64


def shapes_bagel_config(image_size: int = 64, vit_scale: int = 1) -> BagelConfig:
    """`vit_scale` > 1 shows the ViT renders upsampled by that factor: objects then span as many 8-px patches as
    the crops of region questions do, which is what the ViT recognises shapes from (see the checkpoint card)."""
    from transformers import SiglipVisionConfig

    llm = _qwen2_config(dict(vocab_size=VOCAB_SIZE, hidden_size=192, intermediate_size=512, num_hidden_layers=4,
                             num_attention_heads=6, num_key_value_heads=2, rope_theta=10000.0, rms_norm_eps=1e-6,
                             tie_word_embeddings=False, max_position_embeddings=512))
    vit = SiglipVisionConfig(hidden_size=96, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
                             patch_size=8, image_size=image_size * vit_scale, hidden_act="gelu_pytorch_tanh",
                             layer_norm_eps=1e-6)
    vae = VaeParams(resolution=image_size, ch=32, ch_mult=[1, 2, 2], num_res_blocks=1, z_channels=8, downsample=4,
                    scale_factor=1.0, shift_factor=0.0)
    v = VOCAB_SIZE
    return BagelConfig(
        llm_config=llm, vit_config=vit, vae_config=vae, latent_patch_size=2, max_latent_size=image_size // 8,
        vit_max_num_patch_per_side=image_size * vit_scale // 8, timestep_shift=1.0,
        special_tokens=SpecialTokens(v - 12, v - 11, v - 10, v - 9),
        vit_transform=ImageTransformParams(max_size=image_size * vit_scale,
                                           min_size=32 if vit_scale == 1 else image_size * vit_scale, stride=8),
        vae_transform=ImageTransformParams(max_size=image_size, min_size=image_size, stride=16),
    )


def shapes_tokenizer(config: BagelConfig) -> PreTrainedTokenizerFast:
    st = config.special_tokens
    return build_word_tokenizer(vocabulary(), config.llm_config.vocab_size, {
        "<|im_start|>": st.bos_token_id, "<|im_end|>": st.eos_token_id,
        "<|vision_start|>": st.start_of_image, "<|vision_end|>": st.end_of_image})
