"""The Mixture-of-Transformers Qwen2 decoder of BAGEL.

Every weight-bearing module exists twice: the understanding copy (original Qwen2 names) and the
generation copy (`*_moe_gen`). One self-attention spans the whole sequence; each token goes
through the copy of its type (latent tokens: generation; text, markers, ViT tokens: understanding).
Per layer: pre-norm attention with per-expert QK-norm before RoPE, then a SwiGLU MLP.
Attention is `scaled_dot_product_attention` with an explicit boolean mask, so cached decoding,
padding and BAGEL's block patterns are all just masks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint
from transformers import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import Qwen2MLP, Qwen2RMSNorm, Qwen2RotaryEmbedding, apply_rotary_pos_emb

from srum.models.bagel.cache import KVCache


def route(x: torch.Tensor, gen_mask: torch.Tensor, und: Callable, gen: Callable) -> torch.Tensor:
    """Apply `und` to tokens where gen_mask is False and `gen` where it is True; x is (B, N, ...)."""
    if not bool(gen_mask.any()):
        return und(x)
    if bool(gen_mask.all()):
        return gen(x)
    y_und, y_gen = und(x[~gen_mask]), gen(x[gen_mask])
    out = y_und.new_zeros(*gen_mask.shape, *y_und.shape[1:])
    out[~gen_mask] = y_und
    out[gen_mask] = y_gen
    return out


class MoTAttention(nn.Module):
    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        d, self.n_heads, self.n_kv = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
        self.head_dim = d // self.n_heads
        eps = config.rms_norm_eps
        for suffix in ("", "_moe_gen"):
            setattr(self, f"q_proj{suffix}", nn.Linear(d, self.n_heads * self.head_dim, bias=True))
            setattr(self, f"k_proj{suffix}", nn.Linear(d, self.n_kv * self.head_dim, bias=True))
            setattr(self, f"v_proj{suffix}", nn.Linear(d, self.n_kv * self.head_dim, bias=True))
            setattr(self, f"o_proj{suffix}", nn.Linear(self.n_heads * self.head_dim, d, bias=False))
            setattr(self, f"q_norm{suffix}", Qwen2RMSNorm(self.head_dim, eps=eps))
            setattr(self, f"k_norm{suffix}", Qwen2RMSNorm(self.head_dim, eps=eps))

    def _qkv(self, x: torch.Tensor, suffix: str) -> torch.Tensor:
        """(n, D) → (n, Hq+2·Hkv, hd): normed queries, normed keys, values, concatenated on heads."""
        q = getattr(self, f"q_proj{suffix}")(x).unflatten(-1, (self.n_heads, self.head_dim))
        k = getattr(self, f"k_proj{suffix}")(x).unflatten(-1, (self.n_kv, self.head_dim))
        v = getattr(self, f"v_proj{suffix}")(x).unflatten(-1, (self.n_kv, self.head_dim))
        return torch.cat([getattr(self, f"q_norm{suffix}")(q), getattr(self, f"k_norm{suffix}")(k), v], dim=-2)

    def forward(
        self,
        x: torch.Tensor,  # (B, N, D)
        gen_mask: torch.Tensor,  # (B, N)
        rope: tuple[torch.Tensor, torch.Tensor],  # cos, sin: (B, N, hd)
        attention_mask: torch.Tensor,  # (B, N, L+N) bool, L cached keys first
        past: tuple[torch.Tensor, torch.Tensor] | None,  # keys, values: (B, Hkv, L, hd)
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        qkv = route(x, gen_mask, lambda t: self._qkv(t, ""), lambda t: self._qkv(t, "_moe_gen"))
        q, k, v = qkv.transpose(1, 2).split([self.n_heads, self.n_kv, self.n_kv], dim=1)  # (B, H, N, hd)
        q, k = apply_rotary_pos_emb(q, k, *rope)  # QK-norm first, then RoPE; cached keys are post-RoPE
        if past is not None:
            k_all, v_all = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        else:
            k_all, v_all = k, v
        out = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=attention_mask.unsqueeze(1), enable_gqa=True)
        out = out.transpose(1, 2).flatten(2)  # (B, N, Hq·hd)
        return route(out, gen_mask, self.o_proj, self.o_proj_moe_gen), (k, v)


class MoTDecoderLayer(nn.Module):
    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        d, eps = config.hidden_size, config.rms_norm_eps
        self.self_attn = MoTAttention(config)
        self.mlp, self.mlp_moe_gen = Qwen2MLP(config), Qwen2MLP(config)
        self.input_layernorm, self.input_layernorm_moe_gen = Qwen2RMSNorm(d, eps), Qwen2RMSNorm(d, eps)
        self.post_attention_layernorm = Qwen2RMSNorm(d, eps)
        self.post_attention_layernorm_moe_gen = Qwen2RMSNorm(d, eps)

    def forward(self, x, gen_mask, rope, attention_mask, past):
        h = route(x, gen_mask, self.input_layernorm, self.input_layernorm_moe_gen)
        attn, kv = self.self_attn(h, gen_mask, rope, attention_mask, past)
        x = x + attn
        mlp = route(x, gen_mask, lambda t: self.mlp(self.post_attention_layernorm(t)),
                    lambda t: self.mlp_moe_gen(self.post_attention_layernorm_moe_gen(t)))
        return x + mlp, kv


class MoTDecoder(nn.Module):
    """`language_model.model`: token embedding, the MoT layers and the two final norms."""

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([MoTDecoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.norm = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.norm_moe_gen = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = Qwen2RotaryEmbedding(config)
        # Training only: keep each layer's input, recompute its activations in backward (memory for ~1/3 more compute).
        self.activation_checkpointing = False

    def forward(
        self,
        inputs_embeds: torch.Tensor,  # (B, N, D)
        gen_mask: torch.Tensor,  # (B, N)
        position_ids: torch.Tensor,  # (B, N)
        attention_mask: torch.Tensor,  # (B, N, L+N)
        past: KVCache | None = None,
        hidden_states_out: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Final-normed hidden states (B, N, D) and each layer's new (keys, values) for the cache."""
        rope = self.rotary_emb(inputs_embeds, position_ids)
        x, new_kv = inputs_embeds, []
        recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled() and past is None
        for i, layer in enumerate(self.layers):
            if recompute:
                x, kv = checkpoint(layer, x, gen_mask, rope, attention_mask, None, use_reentrant=False)
            else:
                x, kv = layer(x, gen_mask, rope, attention_mask, past.layer(i) if past is not None else None)
            new_kv.append(kv)
            if hidden_states_out is not None:
                hidden_states_out.append(x)
        return route(x, gen_mask, self.norm, self.norm_moe_gen), new_kv


class MoTLanguageModel(nn.Module):
    """`language_model`: the decoder plus the (untied) text head."""

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        self.model = MoTDecoder(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
