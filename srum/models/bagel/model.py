"""`Bagel`: the unified network (official parameter names), and its forward passes.

One forward embeds a `SequenceBatch` (text ids, ViT images, VAE latent tokens) into the decoder,
optionally on top of a `KVCache`, and returns the final states. Heads: `lm_head` on understanding
tokens (text logits), `llm2vae` on noisy latent tokens (velocity v = ε − x0). The network never
computes a loss and never owns a cache; the VAE lives beside it (`BagelVAE`), not inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from srum.models.bagel.cache import KVCache
from srum.models.bagel.config import BagelConfig
from srum.models.bagel.embeddings import PositionTable, TimestepEmbedder
from srum.models.bagel.modeling import MoTLanguageModel
from srum.models.bagel.sequence import LATENT, PAD, VIT, SequenceBatch
from srum.models.bagel.vision import Connector, NaViT


@dataclass
class ForwardOutput:
    hidden: torch.Tensor  # (B, N, D) final-normed states
    cache: KVCache | None  # the extended cache when written, else None
    layer_outputs: list[torch.Tensor] | None = None  # residual stream after each layer, when asked


class Bagel(nn.Module):
    def __init__(self, config: BagelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.language_model = MoTLanguageModel(config.llm_config)
        self.vit_model = NaViT(config.vit_config, config.vit_max_num_patch_per_side)
        self.connector = Connector(config.vit_config.hidden_size, d, config.connector_act)
        self.vit_pos_embed = PositionTable(config.vit_max_num_patch_per_side, d)
        self.latent_pos_embed = PositionTable(config.max_latent_size, d)
        self.time_embedder = TimestepEmbedder(d)
        self.vae2llm = nn.Linear(config.patch_latent_dim, d)
        self.llm2vae = nn.Linear(d, config.patch_latent_dim)

    @property
    def dtype(self) -> torch.dtype:
        return self.vae2llm.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.vae2llm.weight.device

    # ---- embedding --------------------------------------------------------------------------
    def embed(self, batch: SequenceBatch) -> torch.Tensor:
        """(B, N, D) input states: token embeddings, ViT+connector+pos, or vae2llm+time+pos."""
        x = self.language_model.model.embed_tokens(batch.token_ids.to(self.device))
        kind = batch.kind.to(self.device)
        if batch.vit_images:
            vit_states, vit_pos = self.vit_model([im.to(self.device) for im in batch.vit_images])
            vit = self.connector(vit_states) + self.vit_pos_embed(vit_pos).to(x.dtype)
            x = x.masked_scatter((kind == VIT).unsqueeze(-1), vit.to(x.dtype))
        if batch.latent_tokens is not None:
            lat = (self.vae2llm(batch.latent_tokens.to(self.device, self.dtype))
                   + self.time_embedder(batch.latent_t.to(self.device))
                   + self.latent_pos_embed(batch.latent_position_ids.to(self.device)).to(x.dtype))
            x = x.masked_scatter((kind == LATENT).unsqueeze(-1), lat.to(x.dtype))
        return x

    def set_activation_checkpointing(self, on: bool) -> None:
        """Recompute each decoder layer's activations in backward instead of keeping them (training memory)."""
        self.language_model.model.activation_checkpointing = on

    # ---- the one forward --------------------------------------------------------------------
    def forward(
        self,
        batch: SequenceBatch,
        past: KVCache | None = None,
        write_cache: bool = False,
        return_layer_outputs: bool = False,
    ) -> ForwardOutput:
        """Run the decoder over `batch`, after the context in `past` if given.

        With `write_cache`, the batch's keys/values are appended to (a copy of) `past`; noisy latent
        blocks must then be absent, since BAGEL never lets later tokens see them.
        """
        kind = batch.kind.to(self.device)
        if write_cache and bool(batch.noisy.any()):
            raise ValueError("noisy latent blocks cannot be written to a KV cache")
        mask = batch.attention_mask.to(self.device)
        position_ids = batch.position_ids.to(self.device)
        if past is not None:
            if past.batch_size != kind.shape[0]:
                raise ValueError(f"cache holds {past.batch_size} rows, batch has {kind.shape[0]}")
            position_ids = position_ids + past.next_position.unsqueeze(1)
            mask = torch.cat([past.valid.unsqueeze(1).expand(-1, mask.shape[1], -1), mask], dim=2)
        layer_outputs = [] if return_layer_outputs else None
        hidden, new_kv = self.language_model.model(
            self.embed(batch), kind == LATENT, position_ids, mask, past=past, hidden_states_out=layer_outputs
        )
        cache = None
        if write_cache:
            base = past if past is not None else self.empty_cache(kind.shape[0])
            cache = base.extend(new_kv, kind != PAD, batch.next_position.to(self.device) + base.next_position)
        return ForwardOutput(hidden, cache, layer_outputs)

    # ---- heads ------------------------------------------------------------------------------
    def text_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """lm_head in float32 (the softmax over a 152k vocabulary is where bf16 hurts)."""
        return self.language_model.lm_head(hidden).float()

    def velocity(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.llm2vae(hidden).float()

    def prefill(self, batch: SequenceBatch, past: KVCache | None = None) -> KVCache:
        """Append a clean context (text, ViT or clean VAE images) to a cache (a fresh one if None)."""
        return self.forward(batch, past=past if past is not None else self.empty_cache(batch.kind.shape[0]),
                            write_cache=True).cache

    def empty_cache(self, batch_size: int) -> KVCache:
        """A context of nothing: the text-unconditional branch of text-to-image CFG."""
        llm = self.config.llm_config
        return KVCache.empty(llm.num_hidden_layers, batch_size, llm.num_key_value_heads, self.config.head_dim,
                             self.dtype, self.device)
