"""Layout rules: who attends to whom, position ids and expert routing, checked on hand-built samples."""

from __future__ import annotations

import torch

from srum.models.bagel.config import BagelConfig
from srum.models.bagel.sequence import IGNORE, LATENT, PAD, TEXT, VIT, Latent, Tokens, VitImage, build_batch, text_segment

CFG = BagelConfig.tiny()


def test_text_is_causal_and_labels_shift():
    batch = build_batch([[text_segment([5, 6, 7], CFG, loss=True)]], CFG)
    n = 5  # <|im_start|> 5 6 7 <|im_end|>
    assert torch.equal(batch.attention_mask[0], torch.ones(n, n, dtype=torch.bool).tril())
    assert batch.position_ids[0].tolist() == [0, 1, 2, 3, 4]
    assert batch.labels[0].tolist() == [5, 6, 7, CFG.special_tokens.eos_token_id, IGNORE]
    assert batch.next_position.tolist() == [5]


def test_image_block_full_shared_position_and_routing():
    # text (3 tokens incl. markers) → ViT image 28×28 (2×2 patches) → clean latent 2×2 → noisy latent 2×2 → text
    image = torch.zeros(3, 28, 28)
    sample = [Tokens([1, 2, 3]), VitImage(image), Latent(torch.zeros(4, 64), (2, 2)),
              Latent(torch.zeros(4, 64), (2, 2), t=0.5, noisy=True), Tokens([9])]
    b = build_batch([sample], CFG)
    kind, m = b.kind[0], b.attention_mask[0]
    vit = slice(3, 9)  # soi, 4 patches, eoi
    clean = slice(9, 15)
    noisy = slice(15, 21)
    last = 21
    assert kind.tolist() == [TEXT] * 3 + [TEXT] + [VIT] * 4 + [TEXT] * 2 + [LATENT] * 4 + [TEXT] * 2 + [LATENT] * 4 + [TEXT] * 2
    # each image block shares one position; clean blocks advance by 1, the noisy one by 0
    assert b.position_ids[0].tolist() == [0, 1, 2] + [3] * 6 + [4] * 6 + [5] * 6 + [5]
    assert b.next_position.tolist() == [6]
    assert m[vit, vit].all() and m[clean, clean].all() and m[noisy, noisy].all()  # bidirectional inside blocks
    assert m[noisy, :15].all()  # generated latents see all the context before them
    assert not m[last, noisy].any()  # later tokens never see a noisy block
    assert m[last, :15].all() and m[last, last]
    assert not m[:3, 3:].any() and not m[vit, 9:].any()  # nothing sees the future
    assert b.gen_mask[0].sum() == 8  # only latent tokens use the generation expert (markers do not)
    assert b.noisy[0].nonzero().flatten().tolist() == list(range(16, 20))
    assert b.latent_position_ids.tolist() == [0, 1, 8, 9] * 2  # row * max_latent_size(8) + col
    assert b.latent_t.tolist() == [0.0] * 4 + [0.5] * 4


def test_padding_is_masked_and_samples_are_independent():
    b = build_batch([[Tokens([1, 2, 3, 4])], [Tokens([5])]], CFG)
    assert b.kind[1].tolist() == [TEXT, PAD, PAD, PAD]
    # a padded query sees only itself (so softmax never meets an empty row); no real token sees padding
    assert b.attention_mask[1, 1:, :].equal(torch.eye(4, dtype=torch.bool)[1:])
    assert not b.attention_mask[1, 0, 1:].any()
