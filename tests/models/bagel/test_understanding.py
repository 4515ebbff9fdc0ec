"""Understanding: cached decoding equals recomputation; answer distributions equal restricted softmax."""

from __future__ import annotations

import pytest
import torch

from srum.models.bagel.sequence import Tokens, VitImage, build_batch, text_segment
from srum.models.bagel.understanding import answer_distribution, generate_text


def _uncached_greedy(model, context, n):
    """Greedy decoding that re-runs the whole sequence for every new token (no cache)."""
    st = model.config.special_tokens
    ids = [st.bos_token_id]
    out = []
    for _ in range(n):
        batch = build_batch([[*context, Tokens(list(ids))]], model.config)
        with torch.no_grad():
            hidden = model(batch).hidden
        nxt = model.text_logits(hidden[0, -1]).argmax().item()
        if nxt == st.eos_token_id:
            break
        out.append(nxt)
        ids.append(nxt)
    return out


def test_cached_decoding_equals_uncached(tiny):
    model, _ = tiny
    cfg = model.config
    context = [VitImage(torch.rand(3, 28, 42) * 2 - 1), text_segment([11, 12, 13], cfg)]
    with torch.no_grad():
        cache = model.prefill(build_batch([context], cfg))
    assert generate_text(model, cache, 6) == [_uncached_greedy(model, context, 6)]


def test_batched_contexts_of_different_lengths(tiny):
    model, _ = tiny
    cfg = model.config
    contexts = [[text_segment([11, 12, 13, 14, 15], cfg)], [VitImage(torch.zeros(3, 28, 28)), text_segment([9], cfg)]]
    with torch.no_grad():
        cache = model.prefill(build_batch(contexts, cfg))
    together = generate_text(model, cache, 5)
    for ctx, got in zip(contexts, together):
        with torch.no_grad():
            single = model.prefill(build_batch([ctx], cfg))
        assert generate_text(model, single, 5) == [got]


def test_answer_distribution_is_restricted_softmax(tiny):
    model, _ = tiny
    cfg = model.config
    context = [text_segment([20, 21, 22], cfg)]
    with torch.no_grad():
        cache = model.prefill(build_batch([context, context[:0] + [text_segment([5], cfg)]], cfg))
    answers = [40, 41, 42, 43]
    probs = answer_distribution(model, cache, answers)
    # reference: the full sequence recomputed, softmax over the whole vocabulary, restricted and renormalised
    for row, ctx in enumerate([context, [text_segment([5], cfg)]]):
        batch = build_batch([[*ctx, Tokens([cfg.special_tokens.bos_token_id])]], cfg)
        with torch.no_grad():
            full = torch.softmax(model.text_logits(model(batch).hidden[0, -1]), dim=-1)
        expected = full[answers] / full[answers].sum()
        assert torch.allclose(probs[row], expected, atol=1e-5)
    assert torch.allclose(probs.sum(-1), torch.ones(2))


def test_unified_answers_and_single_token_check(tiny_unified):
    from PIL import Image

    image = Image.new("RGB", (40, 30), (200, 10, 10))
    probs = tiny_unified.answer_distribution([image, None], ["does this image show a red circle?", "is this blue?"],
                                             ["yes", "no"])
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(-1), torch.ones(2))
    text = tiny_unified.generate_text([image], ["does this image show a red circle?"], max_new_tokens=3)
    assert isinstance(text[0], str)
    with pytest.raises(ValueError, match="single-token"):
        tiny_unified.answer_distribution([None], ["is this"], ["yes no"])


def test_velocity_matches_sampler_velocity(tiny_unified):
    """The training-side `velocity` (uncached) equals the cached conditional velocity of the sampler."""
    from srum.models.bagel.sampling import GuidanceParams, denoise

    m = tiny_unified
    noise = torch.randn(1, 4, 64, generator=torch.Generator().manual_seed(0))
    cache = m.prefill([[m.text("a red circle")]])
    trace: dict = {}
    denoise(m.model, noise, (2, 2), cache, GuidanceParams(num_timesteps=2, cfg_text_scale=1.0), trace=trace)
    with torch.no_grad():
        v = m.velocity(["a red circle"], noise, torch.tensor([1.0]), (2, 2))
    assert torch.allclose(v, trace["v_cond"][0], atol=1e-5)
