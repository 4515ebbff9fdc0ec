"""Cached-context + batched-CFG sampling vs a naive sampler that recomputes everything every step.

Both run BAGEL's sampler (Euler, timestep shift, text CFG with global renorm and interval) on the
same random small model, prompts and noise. The naive one re-runs the full prompt context for the
conditional branch and the empty context for the unconditional one, as two passes per step; ours
prefills the prompt once and runs both branches as one batch on the cached keys/values.
Prints, per context/image size, the speedup ratio (median of interleaved repeats) and the max
difference of the final latents.

    python benchmarks/sampling.py [--steps 25] [--batch 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from srum.models.bagel.config import BagelConfig
from srum.models.bagel.model import Bagel
from srum.models.bagel.sampling import GuidanceParams, denoise, denoise_recompute
from srum.models.bagel.sequence import build_batch, text_segment


def small_config() -> BagelConfig:
    """Tiny preset widened to a small LLM (4 layers, 256 wide) so the timing is not all Python overhead."""
    cfg = BagelConfig.tiny()
    llm = cfg.llm_config
    llm.hidden_size, llm.intermediate_size, llm.num_hidden_layers = 256, 768, 4
    llm.num_attention_heads, llm.num_key_value_heads = 8, 2
    cfg.max_latent_size = 16
    return cfg


def measure(model: Bagel, prompt_tokens: int, size: int, steps: int, batch: int, repeats: int) -> tuple[float, float, float]:
    """(naive seconds, cached seconds, max |latent difference|), medians of interleaved repeats."""
    cfg = model.config
    grid = (size // cfg.latent_downsample,) * 2
    params = GuidanceParams(num_timesteps=steps + 1, cfg_interval=(0.0, 1.0))
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, 400, (prompt_tokens,), generator=g).tolist() for _ in range(batch)]
    contexts = [[text_segment(p, cfg)] for p in prompts]
    noise = torch.randn(batch, grid[0] * grid[1], cfg.patch_latent_dim, generator=g)

    def cached() -> torch.Tensor:
        with torch.no_grad():
            cond = model.prefill(build_batch(contexts, cfg))
        return denoise(model, noise, grid, cond, params, text_uncond=model.empty_cache(batch))

    def naive() -> torch.Tensor:
        return denoise_recompute(model, noise, grid, contexts, params, text_uncond_context=[[]] * batch)

    def timed(fn):
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out

    timed(cached), timed(naive)  # warm-up
    t_fast, t_naive = [], []
    for _ in range(repeats):  # interleaved, so both see the same machine state
        dt, fast = timed(cached)
        t_fast.append(dt)
        dt, slow = timed(naive)
        t_naive.append(dt)
    return statistics.median(t_naive), statistics.median(t_fast), (fast - slow).abs().max().item()


# (prompt tokens, image side): a plain prompt; a long prompt; a think-mode context (system prompt +
# prompt + plan, a few hundred tokens) at ShapesWorld's 64 px; a short prompt with a larger image.
REGIMES = [(32, 64), (128, 64), (300, 64), (64, 128)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=25, help="Euler steps (num_timesteps − 1)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    torch.manual_seed(0)
    cfg = small_config()
    model = Bagel(cfg).eval()
    print(f"llm {cfg.llm_config.num_hidden_layers} layers x {cfg.hidden_size}, batch {args.batch}, "
          f"{args.steps} Euler steps, text CFG on every step, {torch.get_num_threads()} threads")
    print(f"{'context':>8} {'image':>6} {'latents':>7} {'naive s':>8} {'cached s':>9} {'speedup':>8} {'max |dx|':>9}")
    for prompt_tokens, size in REGIMES:
        naive_s, fast_s, diff = measure(model, prompt_tokens, size, args.steps, args.batch, args.repeats)
        n_lat = (size // cfg.latent_downsample) ** 2
        print(f"{prompt_tokens + 2:>8} {size:>5}px {n_lat:>7} {naive_s:>8.3f} {fast_s:>9.3f} "
              f"{naive_s / fast_s:>7.2f}x {diff:>9.1e}")
    print("The gain grows with context length over image tokens: prefilling saves re-running the context,")
    print("batching saves one pass per step. Differences are float32 rounding (identical images).")


if __name__ == "__main__":
    main()
