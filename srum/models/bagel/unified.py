"""`BagelUnified`: BAGEL behind the backend-neutral `UnifiedModel` interface.

It owns the tokenizer and the BAGEL prompt format — every text piece is its own
`<|im_start|> … <|im_end|>` segment, images are `<|vision_start|> … <|vision_end|>` blocks, no
chat template — and turns strings and PIL images into the id-level calls of `sampling` and
`understanding`. Think mode follows BAGEL: plan as text under a system prompt, then draw in the
same context, with the plan re-encoded as a new segment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import PreTrainedTokenizerBase

from srum.models.bagel.cache import KVCache
from srum.models.bagel.images import image_to_tensor, target_size, tensor_to_images
from srum.models.bagel.latents import patchify_latent, unpatchify_latent
from srum.models.bagel.model import Bagel
from srum.models.bagel.sampling import GuidanceParams, combine_guidance, denoise
from srum.models.bagel.sequence import Latent, Segment, VitImage, build_batch, text_segment
from srum.models.bagel.understanding import answer_distribution, generate_text, step_logits
from srum.models.bagel.vae import BagelVAE
from srum.models.interface import Guide, Posterior, SampledImages

GEN_THINK_SYSTEM_PROMPT = (
    "You should first think about the planning process in the mind and then generate the image. \n"
    "The planning process is enclosed within <think> </think> tags, i.e. <think> planning process here </think> image here"
)
UND_THINK_SYSTEM_PROMPT = (
    "You should first think about the reasoning process in the mind and then provide the user with the answer. \n"
    "The reasoning process is enclosed within <think> </think> tags, i.e. <think> reasoning process here </think> answer here"
)


@dataclass
class BagelUnified:
    model: Bagel
    vae: BagelVAE
    tokenizer: PreTrainedTokenizerBase
    guidance: GuidanceParams = field(default_factory=GuidanceParams)
    max_think_tokens: int = 1000
    # Training forwards go through this callable when set (the DeepSpeed engine wrapping `model`).
    forward_module: Callable | None = None

    # The generation expert's attention and MLP projections of every layer (the MoT `*_moe_gen` copies).
    lora_targets = r".*\.self_attn\.(q|k|v|o)_proj_moe_gen|.*\.mlp_moe_gen\.(gate|up|down)_proj"
    # Generation side: the `*_moe_gen` expert and its norms, the timestep embedder and the latent projections.
    # Text never attends to images, so freezing the understanding side cuts no gradient the generation side needs.
    _GENERATION_SIDE = ("_moe_gen", "time_embedder.", "vae2llm.", "llm2vae.")

    @staticmethod
    def check_folder(folder: str | Path) -> None:
        """Raise FileNotFoundError naming the file a loadable folder lacks (before anything is loaded)."""
        from srum.models.bagel.weights import check_bagel_folder

        check_bagel_folder(Path(folder))
        if not (Path(folder) / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{folder} has no tokenizer.json; BagelUnified needs one to read prompts")

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32,
                        device: torch.device | str = "cpu", sampling: Mapping[str, Any] | None = None,
                        **kwargs) -> BagelUnified:
        """Load a folder; sampler settings are the folder's srum_sampler.json (else BAGEL's defaults) with
        `sampling`'s names (GuidanceParams fields) over them."""
        from srum.models.bagel.weights import load_bagel, load_generation_config

        ck = load_bagel(folder, dtype=dtype, device=device)
        if ck.tokenizer is None:
            raise FileNotFoundError(f"{folder} has no tokenizer.json; BagelUnified needs one to read prompts")
        unified = cls(ck.model, ck.vae, ck.tokenizer, guidance=load_generation_config(folder) or GuidanceParams(),
                      **kwargs)
        unified.set_sampling(**(sampling or {}))
        return unified

    # ---- what the loop needs to know (srum.models.interface) --------------------------------
    def sampling_settings(self) -> dict[str, Any]:
        out = dataclasses.asdict(self.guidance)
        out["cfg_interval"] = list(out["cfg_interval"])
        return out

    def set_sampling(self, **settings: Any) -> None:
        names = {f.name for f in dataclasses.fields(GuidanceParams)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise ValueError(f"unknown BAGEL sampler setting(s) {unknown}; expected some of {sorted(names)}")
        if "cfg_interval" in settings:
            settings = {**settings, "cfg_interval": tuple(settings["cfg_interval"])}
        self.guidance = dataclasses.replace(self.guidance, **settings)

    def trainable_module(self) -> torch.nn.Module:
        return self.model

    @staticmethod
    def is_generation_parameter(name: str) -> bool:
        return any(tag in name for tag in BagelUnified._GENERATION_SIDE)

    # The understanding path's ends: the image encoder and connector read only ViT tokens, the final norm and text
    # head only the hidden states of text the model writes; a prompt reaches the generation tokens through the
    # understanding expert's keys and values in every layer, so that expert is not among them.
    _JUDGE_ONLY = ("vit_model.", "connector.", "language_model.lm_head.", "language_model.model.norm.")

    @staticmethod
    def is_judge_only_parameter(name: str) -> bool:
        return name.startswith(BagelUnified._JUDGE_ONLY)

    def training_view(self, forward: Callable) -> BagelUnified:
        return dataclasses.replace(self, forward_module=forward)

    @classmethod
    def memory_facts(cls, folder: str | None, resolution: int, freeze_und: bool, lora_rank: int):
        from srum.models.bagel.memory import memory_facts

        return memory_facts(folder, resolution, freeze_und, lora_rank, cls.is_generation_parameter, cls.lora_targets)

    def save_pretrained(self, folder: str | Path, state_dict: Mapping[str, torch.Tensor] | None = None) -> None:
        from srum.models.bagel.weights import save_bagel

        save_bagel(folder, self.model, self.vae, self.tokenizer, self.guidance,
                   state_dict=dict(state_dict) if state_dict is not None else None)

    @property
    def config(self):
        return self.model.config

    # ---- text and images → segments --------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def text(self, text: str, loss: bool = False) -> Segment:
        return text_segment(self.encode_text(text), self.config, loss=loss)

    def vit_image(self, image: Image.Image) -> Segment:
        return VitImage(image_to_tensor(image, self.config.vit_transform))

    def prefill(self, samples: list[list[Segment]]) -> KVCache:
        with torch.no_grad():
            return self.model.prefill(build_batch(samples, self.config))

    def latent_grid(self, height: int, width: int) -> tuple[int, int]:
        step = self.config.latent_downsample
        if height % step or width % step:
            raise ValueError(f"image size {height}x{width} must be a multiple of {step} (VAE ×{self.config.vae_config.downsample}, latent patch {self.config.latent_patch_size})")
        return height // step, width // step

    # ---- generation -------------------------------------------------------------------------
    def initial_noise(self, seeds: list[int], grid: tuple[int, int]) -> torch.Tensor:
        """(B, h·w, token_dim) float32 noise, each row from its own seed (independent of batching)."""
        shape = (grid[0] * grid[1], self.config.patch_latent_dim)
        return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])

    def plan(self, prompts: list[str]) -> list[str]:
        """Think mode's first half: the model writes a plan for each prompt (greedy)."""
        cache = self.prefill([[self.text(GEN_THINK_SYSTEM_PROMPT), self.text(p)] for p in prompts])
        ids = generate_text(self.model, cache, self.max_think_tokens)
        return [self.tokenizer.decode(x, skip_special_tokens=True) for x in ids]

    def step_noise(self, seeds: list[int], grid: tuple[int, int], steps: int) -> torch.Tensor:
        """(B, steps, h·w, token_dim) Gaussian noise of SDE steps: each row continues its seed's generator after the
        initial noise, so a rollout's start equals the ODE sampler's for the same seed."""
        shape = (grid[0] * grid[1], self.config.patch_latent_dim)
        out = []
        for s in seeds:
            g = torch.Generator().manual_seed(int(s))
            torch.randn(shape, generator=g)  # the initial noise (initial_noise draws it alike)
            out.append(torch.randn((steps, *shape), generator=g))
        return torch.stack(out)

    @torch.no_grad()
    def sample_latents(self, prompts: list[str], seeds: list[int], height: int, width: int, think: bool = False,
                       noise_level: float = 0.0, guide: Guide | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, list[str] | None, torch.Tensor | None]:
        """Clean latents (B, C, h, w), the noise they came from, the plans (think mode) and, for SDE rollouts
        (noise_level > 0), the trajectory (B, num_timesteps, h·w, token_dim): x at every grid point."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        grid = self.latent_grid(height, width)
        plans = None
        if think:
            plans = self.plan(prompts)
            sys_seg = self.text(GEN_THINK_SYSTEM_PROMPT)
            cond = self.prefill([[sys_seg, self.text(p), self.text(pl)] for p, pl in zip(prompts, plans)])
            text_uncond = self.prefill([[sys_seg]] * len(prompts))
        else:
            cond = self.prefill([[self.text(p)] for p in prompts])
            text_uncond = self.model.empty_cache(len(prompts))
        # Text-to-image has no input image, so the image-unconditional context equals the conditional one.
        noise = self.initial_noise(seeds, grid)
        path: list[torch.Tensor] | None = [] if noise_level > 0 else None
        step_noise = self.step_noise(seeds, grid, self.guidance.num_timesteps - 1) if noise_level > 0 else None
        tokens = denoise(self.model, noise.to(self.model.device), grid, cond, self.guidance,
                         text_uncond=text_uncond, img_uncond=cond, step_noise=step_noise, noise_level=noise_level,
                         path=path, guide=guide)
        p = self.config.latent_patch_size
        latents = torch.stack([unpatchify_latent(t, grid, p) for t in tokens.cpu()])
        return latents, noise, plans, torch.stack(path, dim=1) if path is not None else None

    def encode_images(self, images: list[Image.Image], seeds: list[int]) -> torch.Tensor:
        """Images → clean latents (B, C, h, w) as BAGEL's training encodes them (a posterior sample per seed)."""
        return self.encode_posteriors(images).sample(seeds)

    def encode_posteriors(self, images: list[Image.Image]) -> Posterior:
        """Images → their autoencoder posteriors (B, C, h, w), one image at a time (1024² activations are large)."""
        parts = [self.vae.posterior(image_to_tensor(image)[None].to(self.vae.model.device)) for image in images]
        return Posterior(torch.cat([p.mean for p in parts]).cpu(), torch.cat([p.std for p in parts]).cpu())

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        return tensor_to_images(self.vae.decode(latents.to(self.vae.model.device)))

    def sample_images(self, prompts: list[str], seeds: list[int], height: int, width: int,
                      think: bool = False, guide: Guide | None = None) -> SampledImages:
        latents, noise, plans, _ = self.sample_latents(prompts, seeds, height, width, think=think, guide=guide)
        return SampledImages(self.decode(latents), latents, noise, list(seeds), plans)

    def sample_trajectories(self, prompts: list[str], seeds: list[int], height: int, width: int,
                            noise_level: float, think: bool = False) -> SampledImages:
        latents, noise, plans, trajectory = self.sample_latents(prompts, seeds, height, width, think=think,
                                                                noise_level=noise_level)
        return SampledImages(self.decode(latents), latents, noise, list(seeds), plans, trajectory)

    # ---- training-side calls ----------------------------------------------------------------
    def latents_to_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        p = self.config.latent_patch_size
        return torch.stack([patchify_latent(x, p) for x in latents])

    def velocity(self, prompts: list[str | None], noisy_tokens: torch.Tensor, t: torch.Tensor,
                 grid: tuple[int, int]) -> torch.Tensor:
        """v(x_t | prompt) as in BAGEL's training forward (text segment, then the noisy block); None = no prompt."""
        samples = [([self.text(p)] if p is not None else []) + [Latent(x, grid, ti, noisy=True)]
                   for p, x, ti in zip(prompts, noisy_tokens, t)]
        batch = build_batch(samples, self.config)
        out = (self.forward_module or self.model)(batch)
        return self.model.velocity(out.hidden[batch.noisy.to(out.hidden.device)]).reshape(noisy_tokens.shape)

    def guided_velocity(self, prompts: list[str | None], noisy_tokens: torch.Tensor, t: torch.Tensor,
                        grid: tuple[int, int]) -> torch.Tensor:
        """The velocity the sampler steps with: text CFG (and its renorm) as `sample_latents` applies it, inside
        `cfg_interval`, from one batched forward of the conditional and the text-unconditional rows. Training it
        improves the policy that drew the samples, not only its conditional branch."""
        B = len(prompts)
        v = self.velocity(list(prompts) + [None] * B, noisy_tokens.repeat(2, 1, 1), t.repeat(2), grid)
        v_cond, v_text = v[:B], v[B:]
        g = self.guidance
        # text-to-image has no input image: the image-unconditional branch is the conditional one, as in sampling
        guided = combine_guidance(v_cond, v_text if g.cfg_text_scale > 1.0 else None,
                                  v_cond if g.cfg_img_scale > 1.0 else None, g)
        lo, hi = g.cfg_interval
        inside = ((t > lo) & (t <= hi)).to(v.device).view(-1, 1, 1)
        return torch.where(inside, guided, v_cond)

    # ---- understanding ----------------------------------------------------------------------
    def _question_context(self, images: list[Image.Image | None], questions: list[str]) -> KVCache:
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images but {len(questions)} questions")
        return self.prefill([([self.vit_image(im)] if im is not None else []) + [self.text(q)]
                             for im, q in zip(images, questions)])

    def generate_text(self, images: list[Image.Image | None], questions: list[str],
                      max_new_tokens: int = 64, temperature: float = 0.0, seed: int = 0) -> list[str]:
        """Greedy answers, or sampled ones at `temperature` > 0 (seeded, e.g. for judge retries)."""
        generator = torch.Generator().manual_seed(seed) if temperature > 0 else None
        ids = generate_text(self.model, self._question_context(images, questions), max_new_tokens,
                            do_sample=temperature > 0, temperature=max(temperature, 1e-6), generator=generator)
        return [self.tokenizer.decode(x, skip_special_tokens=True) for x in ids]

    def answer_token_ids(self, answers: list[str]) -> list[int]:
        ids = []
        for a in answers:
            enc = self.encode_text(a)
            if len(enc) != 1:
                raise ValueError(f"answer {a!r} is {len(enc)} tokens {enc}; answer_distribution needs single-token answers")
            ids.append(enc[0])
        return ids

    def answer_distribution(self, images: list[Image.Image | None], questions: list[str],
                            answers: list[str]) -> torch.Tensor:
        return answer_distribution(self.model, self._question_context(images, questions), self.answer_token_ids(answers))

    def latent_answer_log_odds(self, tokens: torch.Tensor, grid: tuple[int, int], questions: list[str],
                               answers: tuple[str, str]) -> torch.Tensor:
        """log P(answers[0]) − log P(answers[1]) about the images `tokens` decode to, differentiable in `tokens`: the
        same context and first answer token as `answer_distribution`, on the decoder's unrounded pixels, resized for
        the ViT by BAGEL's rule with a differentiable bicubic (PIL's in `answer_distribution`)."""
        if len(questions) != tokens.shape[0]:
            raise ValueError(f"{tokens.shape[0]} latents but {len(questions)} questions")
        p = self.config.latent_patch_size
        latents = torch.stack([unpatchify_latent(x, grid, p) for x in tokens])
        pixels = self.vae.decode(latents.to(self.vae.model.device)).float().clamp(-1.0, 1.0)
        w, h = target_size(pixels.shape[-1], pixels.shape[-2], self.config.vit_transform)
        if (h, w) != tuple(pixels.shape[-2:]):
            pixels = torch.nn.functional.interpolate(pixels, size=(h, w), mode="bicubic", align_corners=False,
                                                     antialias=True).clamp(-1.0, 1.0)
        return self._log_odds([[VitImage(px), self.text(q)] for px, q in zip(pixels, questions)], answers)

    def answer_log_odds(self, images: list[Image.Image], questions: list[str],
                        answers: tuple[str, str]) -> torch.Tensor:
        """The same context and first answer token as `answer_distribution`, with gradients to the weights."""
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images but {len(questions)} questions")
        return self._log_odds([[self.vit_image(im), self.text(q)] for im, q in zip(images, questions)], answers)

    def _log_odds(self, samples: list[list[Segment]], answers: tuple[str, str]) -> torch.Tensor:
        cache = self.model.prefill(build_batch(samples, self.config))
        logits, _ = step_logits(self.model, cache, [self.config.special_tokens.bos_token_id] * len(samples))
        log_p = torch.log_softmax(logits[:, self.answer_token_ids(list(answers))], dim=-1)
        return log_p[:, 0] - log_p[:, 1]
