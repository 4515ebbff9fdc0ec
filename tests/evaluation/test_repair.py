"""Re-drawing a sample around its accepted regions: the token mask by hand, and the guide holding exactly the held
tokens of a real (tiny) sampler while the others are drawn anew."""

from __future__ import annotations

import pytest
import torch

from srum.evaluation.repair import accepted, held_tokens, region_tokens, repaint_guide
from srum.models.bagel.config import BagelConfig
from srum.models.bagel.model import Bagel
from srum.models.bagel.sampling import GuidanceParams
from srum.models.bagel.unified import BagelUnified
from srum.models.bagel.vae import BagelVAE
from srum.worlds.shapes.model import shapes_tokenizer

PROMPTS = ["a red circle", "a blue square left of a green circle"]


def test_region_tokens_by_hand():
    assert [accepted(s) for s in (0.5, 0.0, -1.0, None)] == [True, False, False, None]
    # An 8 × 8 image on a 2 × 2 grid: cells of 4 × 4 pixels, tokens row-major (0 1 / 2 3).
    def held(boxes, scores, above=0.0):
        return region_tokens(boxes, scores, (8, 8), (2, 2), above).tolist()

    assert held([[0, 0, 3, 3]], [1.0]) == [True, False, False, False]
    assert held([[3, 3, 5, 5]], [0.5]) == [True, True, True, True]  # pixels 3–4 straddle both cells each way
    assert held([[4, 0, 8, 8]], [1.0]) == [False, True, False, True]  # x2 exclusive: the right column only
    assert held([[0, 0, 8, 8], [0, 0, 8, 8]], [-1.0, None]) == [False] * 4  # rejected and unjudged regions
    assert held([[3, 3, 5, 5]], [0.5], above=0.6) == [False] * 4
    assert held([[0, 0, 8, 8], [4, 4, 8, 8]], [-1.0, None], above=-2.0) == [True] * 4
    assert region_tokens([[0, 0, 3, 3], [4, 4, 8, 8], [0, 4, 3, 8]], [1.0, -1.0, None], (8, 8), (2, 2),
                         verdict=False).tolist() == [False, False, False, True]  # the rejected one alone
    # Held: the accepted regions' tokens less those a rejected region touches (here the token both share).
    assert held_tokens([[0, 0, 8, 3], [3, 0, 5, 8]], [1.0, -1.0], (8, 8), (2, 2)).tolist() == [False] * 4
    assert held_tokens([[0, 0, 8, 3], [4, 4, 8, 8]], [1.0, -1.0], (8, 8), (2, 2)).tolist() == [True, True, False,
                                                                                               False]
    with pytest.raises(ValueError, match="not a whole number of latent cells"):
        region_tokens([], [], (10, 8), (3, 2))


def test_held_tokens_end_at_the_known_latents_and_the_rest_is_drawn_anew():
    torch.manual_seed(0)
    config = BagelConfig.tiny()
    m = BagelUnified(Bagel(config).eval(), BagelVAE(config.vae_config).eval(), shapes_tokenizer(config))
    m.guidance = GuidanceParams(num_timesteps=4, timestep_shift=2.0, cfg_text_scale=3.0, cfg_interval=(0.0, 1.0))
    known = m.latents_to_tokens(m.sample_images(PROMPTS, [1, 2], 32, 32).latents)
    plain = m.latents_to_tokens(m.sample_images(PROMPTS, [5, 6], 32, 32).latents)
    keep = torch.zeros(known.shape[:2], dtype=torch.bool)
    keep[0, :3], keep[1, -2:] = True, True

    def redraw(mask: torch.Tensor) -> torch.Tensor:
        return m.latents_to_tokens(m.sample_images(PROMPTS, [5, 6], 32, 32, guide=repaint_guide(known, mask)).latents)

    held = redraw(keep)
    # The last step lands on the shifted clean estimate: the known latents, to rounding.
    assert torch.allclose(held[keep], known[keep], atol=1e-5)
    # The free tokens are new draws: neither the known sample nor the plain draw of the same seeds, since they
    # attend to the held ones.
    assert (held[~keep] - known[~keep]).abs().max() > 1e-2 and (held[~keep] - plain[~keep]).abs().max() > 1e-4
    assert torch.equal(redraw(torch.zeros_like(keep)), plain)  # nothing held: the plain sampler
    assert torch.allclose(redraw(torch.ones_like(keep)), known, atol=1e-5)  # everything held: the known sample
