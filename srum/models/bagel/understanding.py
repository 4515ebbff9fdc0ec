"""Understanding from a prefilled context: next-token logits, answer distributions, text decoding.

Decoding starts by feeding `<|im_start|>` at the context's next position, as BAGEL does, and stops
at `<|im_end|>`. Rows of a batch may have contexts of different lengths (see `KVCache`).
"""

from __future__ import annotations

import torch

from srum.models.bagel.cache import KVCache
from srum.models.bagel.model import Bagel
from srum.models.bagel.sequence import Tokens, build_batch


def step_logits(model: Bagel, cache: KVCache, tokens: list[int]) -> tuple[torch.Tensor, KVCache]:
    """Feed one token per row; return its next-token logits (B, V) in float32 and the extended cache."""
    batch = build_batch([[Tokens([tok])] for tok in tokens], model.config)
    out = model(batch, past=cache, write_cache=True)
    return model.text_logits(out.hidden[:, -1]), out.cache


@torch.no_grad()
def answer_distribution(model: Bagel, cache: KVCache, answer_token_ids: list[int]) -> torch.Tensor:
    """P(first answer token = a_k | context), renormalised over the K candidates: (B, K), one forward.

    Equals the softmax of the full-vocabulary logits restricted to the candidates' columns.
    """
    start = model.config.special_tokens.bos_token_id
    logits, _ = step_logits(model, cache, [start] * cache.batch_size)
    return torch.softmax(logits[:, answer_token_ids], dim=-1)


@torch.no_grad()
def generate_text(
    model: Bagel,
    cache: KVCache,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    trace: dict[str, list[torch.Tensor]] | None = None,
) -> list[list[int]]:
    """Decode each row until `<|im_end|>` or `max_new_tokens`; returns the new ids without the markers."""
    st = model.config.special_tokens
    B = cache.batch_size
    out: list[list[int]] = [[] for _ in range(B)]
    done = [False] * B
    feed = [st.bos_token_id] * B
    for _ in range(max_new_tokens):
        logits, cache = step_logits(model, cache, feed)
        if trace is not None:
            trace.setdefault("logits", []).append(logits.clone())
        if do_sample:
            probs = torch.softmax(logits / temperature, dim=-1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).tolist()
        else:
            nxt = logits.argmax(dim=-1).tolist()
        for b, tok in enumerate(nxt):
            if done[b]:
                continue
            if tok == st.eos_token_id:
                done[b] = True
            else:
                out[b].append(tok)
        if all(done):
            break
        feed = [st.eos_token_id if done[b] else nxt[b] for b in range(B)]
    return out
