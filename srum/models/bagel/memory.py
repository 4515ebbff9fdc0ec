"""What a memory plan needs to know about a BAGEL model, without loading its weights.

Parameters are counted on the meta device from the configuration (of the model folder when it exists, else of the
BAGEL-7B-MoT release); since our loader checks every official name and shape, the count is the release's. The
activations one decoder layer keeps for the backward pass are *measured*: a layer of this implementation runs on a
few small configurations on the CPU, the bytes of every tensor autograd saves (weights excluded) are counted, and a
per-token cost a·hidden + b·kv_width + c·intermediate (elements) is fitted, then evaluated at the real sizes.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch

from srum.models.bagel.config import BagelConfig


@dataclasses.dataclass(frozen=True)
class MemoryFacts:
    source: str  # where the configuration came from
    params_total: int  # the trained module (decoder, ViT, connectors); the VAE is separate and frozen
    params_trainable: int
    largest_layer: int  # parameters of the largest decoder layer (ZeRO-3 gathers one at a time)
    vae_params: int
    layers: int
    hidden: int
    tokens_per_image: int  # text (a typical prompt) + the image's latent tokens + markers
    layer_elements_per_token: float  # activation elements a decoder layer saves per token (measured, see above)


TYPICAL_PROMPT_TOKENS = 64  # T2I-CompBench prompts are 10-40 tokens; the official prompt format adds markers


def config_for(folder: str | None) -> tuple[BagelConfig, str]:
    """The folder's configuration when it holds one, else the BAGEL-7B-MoT release's (saying which)."""
    if folder and (Path(folder) / "config.json").is_file():
        return BagelConfig.load(Path(folder) / "config.json"), f"the config of {folder}"
    if folder and (Path(folder) / "llm_config.json").is_file() and (Path(folder) / "ema.safetensors").is_file():
        return BagelConfig.from_official(folder), f"the official release at {folder}"
    return BagelConfig.bagel_7b_mot(), "BAGEL-7B-MoT's published configuration (preset 7b-mot; no model folder read)"


def memory_facts(folder: str | None, resolution: int, freeze_und: bool, lora_rank: int,
                 is_generation, lora_targets: str) -> MemoryFacts:
    import re

    from srum.models.bagel.model import Bagel
    from srum.models.bagel.vae import BagelVAE

    config, source = config_for(folder)
    with torch.device("meta"):
        model, vae = Bagel(config), BagelVAE(config.vae_config)
    total = sum(p.numel() for p in model.parameters())
    if lora_rank > 0:
        pattern = re.compile(lora_targets)
        trainable = sum(lora_rank * (m.in_features + m.out_features) for name, m in model.named_modules()
                        if isinstance(m, torch.nn.Linear) and pattern.fullmatch(name))
    elif freeze_und:
        trainable = sum(p.numel() for name, p in model.named_parameters() if is_generation(name))
    else:
        trainable = total
    layers = model.language_model.model.layers
    llm = config.llm_config
    grid = resolution // config.latent_downsample
    return MemoryFacts(
        source=source, params_total=total, params_trainable=trainable,
        largest_layer=max(sum(p.numel() for p in layer.parameters()) for layer in layers),
        vae_params=sum(p.numel() for p in vae.model.parameters()), layers=len(layers), hidden=llm.hidden_size,
        tokens_per_image=TYPICAL_PROMPT_TOKENS + grid * grid + 2,
        layer_elements_per_token=layer_elements_per_token(
            llm.hidden_size, llm.num_key_value_heads * (llm.hidden_size // llm.num_attention_heads),
            llm.intermediate_size))


def layer_elements_per_token(hidden: int, kv_width: int, intermediate: int) -> float:
    a, b, c = _fitted_coefficients()
    return a * hidden + b * kv_width + c * intermediate


@functools.lru_cache(maxsize=1)
def _fitted_coefficients() -> tuple[float, float, float]:
    """(a, b, c) of a·hidden + b·kv_width + c·intermediate, by least squares over small measured configurations."""
    shapes = [(64, 2, 128), (128, 2, 128), (64, 4, 128), (64, 2, 384), (128, 4, 256)]  # hidden, kv heads, inter
    rows, costs = [], []
    for hidden, kv_heads, inter in shapes:
        head_dim = hidden // 4
        rows.append([hidden, kv_heads * head_dim, inter])
        costs.append(_measured_elements_per_token(hidden, kv_heads, inter))
    solution = torch.linalg.lstsq(torch.tensor(rows, dtype=torch.float64), torch.tensor(costs, dtype=torch.float64))
    return tuple(float(v) for v in solution.solution)  # type: ignore[return-value]


def _measured_elements_per_token(hidden: int, kv_heads: int, intermediate: int, grid: int = 8) -> float:
    """Float elements one decoder layer saves for backward, per token, in a generation-training forward (image
    tokens through the generation expert, a short prompt through the understanding one); weights and the boolean
    attention mask excluded."""
    from srum.models.bagel.config import _qwen2_config
    from srum.models.bagel.model import Bagel
    from srum.models.bagel.sequence import Latent, build_batch, text_segment

    base = BagelConfig.tiny()
    config = dataclasses.replace(base, llm_config=_qwen2_config(dict(
        vocab_size=base.llm_config.vocab_size, hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=kv_heads, rope_theta=1e6,
        rms_norm_eps=1e-6, tie_word_embeddings=False)))
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Bagel(config).train()
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    layer = model.language_model.model.layers[0]
    samples = [[text_segment([5, 6, 7, 8], config),
                Latent(torch.randn(grid * grid, config.patch_latent_dim, generator=generator), (grid, grid), 0.5,
                       noisy=True)] for _ in range(2)]
    batch = build_batch(samples, config)
    saved: dict[int, int] = {}
    inside = [False]

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if inside[0] and t.is_floating_point() and storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes() // t.element_size()
        return t

    hooks = [layer.register_forward_pre_hook(lambda *_: inside.__setitem__(0, True)),
             layer.register_forward_hook(lambda *_: inside.__setitem__(0, False))]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(batch)
    finally:
        for h in hooks:
            h.remove()
    return sum(saved.values()) / batch.noisy.numel()
