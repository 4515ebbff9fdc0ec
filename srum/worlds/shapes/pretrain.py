"""Pretraining the tiny ShapesWorld BAGEL on 2 CPU cores, in two resumable stages.

1. autoencoder: the FLUX-style `AutoencoderKL` on renders (reconstruction + a small KL), then the
   latent shift/scale measured so latents have zero mean and unit variance, as FLUX's constants do.
2. joint (and optionally a second, "focus" joint stage with its own mix): BAGEL's own losses on one padded batch per step, half text-to-image (flow matching with
   logit-normal t and 10% prompt dropout for CFG) and half understanding (`tasks.ShapesTasks`: whole-
   image and region yes/no questions with hard negatives, descriptions, region naming), with a short
   curriculum that starts on single objects; optionally a dense per-patch shape loss on the ViT alone
   (`patch_labels`), through a linear head that is not shipped. An EMA of the weights is what gets shipped.
Every step's data and noise derive from (seed, step), so a resumed run sees what an unbroken one would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from srum import flow
from srum.models.bagel.config import BagelConfig
from srum.models.bagel.images import image_to_tensor
from srum.models.bagel.model import Bagel
from srum.models.bagel.sequence import IGNORE, Latent, VitImage, build_batch, text_segment
from srum.models.bagel.vae import BagelVAE
from srum.models.bagel.vision import resize_position_table
from srum.models.bagel.weights import save_bagel
from srum.utils.io import atomic_path, atomic_write_json
from srum.utils.seeds import derive_seed
from srum.worlds.shapes.model import shapes_bagel_config, shapes_tokenizer
from srum.worlds.shapes.patch_labels import BACKGROUND, N_CLASSES, patch_shape_labels
from srum.worlds.shapes.tasks import ShapesTasks

logger = logging.getLogger(__name__)


@dataclass
class AutoencoderStage:
    steps: int = 1500
    batch_size: int = 16
    lr: float = 1e-3
    kl_weight: float = 1e-6
    stats_images: int = 512  # renders used to measure the latent shift/scale


@dataclass
class JointStage:
    steps: int = 4000
    t2i_batch: int = 24
    qa_batch: int = 24
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    betas: tuple[float, float] = (0.9, 0.95)
    ema_decay: float = 0.999
    cfg_dropout: float = 0.1  # prompt dropped → empty context, so CFG has an unconditional model
    single_object_until: float = 0.2  # fraction of steps with a high share of single-object scenes
    single_object_p: tuple[float, float] = (0.5, 0.1)  # share early, share after the curriculum
    mse_weight: float = 1.0
    ce_weight: float = 1.0
    match_share: float = 0.4  # share of understanding examples that are whole-image yes/no match questions
    paired_match: bool = False  # match questions as (true prompt, hard negative) pairs on one render
    vit_scale: int = 1  # renders shown to the ViT upsampled by this factor (a finer patch grid; see the model)
    # Dense per-patch shape targets on the ViT through a head used only here (`patch_labels`): without them the
    # ViT barely encodes shape in whole images, and every binding question needs shape.
    patch_shape_weight: float = 0.0
    patch_batch: int = 16


@dataclass
class PretrainConfig:
    out_dir: str = "runs/pretrain-shapes"
    seed: int = 0
    image_size: int = 64
    threads: int = 2
    save_every: int = 250
    log_every: int = 25
    eval_every: int = 500
    autoencoder: AutoencoderStage = field(default_factory=AutoencoderStage)
    joint: JointStage = field(default_factory=JointStage)
    # An optional second joint stage from the first one's EMA, usually with more understanding and more
    # match questions: yes/no binding questions are what the model learns last (see the checkpoint card).
    focus: JointStage | None = None


# ---- small helpers ------------------------------------------------------------------------------
def _step_tasks(cfg: PretrainConfig, stage: int, step: int) -> ShapesTasks:
    """The data stream of one step: seeded by (seed, stage, step), independent of any resume."""
    return ShapesTasks(seed=derive_seed(cfg.seed, stage, step), image_size=cfg.image_size)


def _save_state(folder: Path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer, step: int,
                scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> None:
    """Weights and the optimizer's tensors as safetensors, its settings and the scheduler's position as JSON: a
    resume unpickles nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, module in modules.items():
        with atomic_path(folder / f"{name}.safetensors") as tmp:
            save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(tmp))
    opt = optimizer.state_dict()
    tensors = {f"{i}.{k}": v.contiguous() for i, st in opt["state"].items() for k, v in st.items()}
    with atomic_path(folder / "optimizer.safetensors") as tmp:
        save_file(tensors or {"_empty": torch.zeros(0)}, str(tmp))
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"} if scheduler else None
    atomic_write_json(folder / "state.json", {"step": step, "param_groups": opt["param_groups"],
                                              "scheduler": sched})  # written last: marks the state complete


def _load_state(folder: Path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> int:
    if not (folder / "state.json").is_file():
        return 0
    for name, module in modules.items():
        module.load_state_dict(load_file(str(folder / f"{name}.safetensors")))
    meta = json.loads((folder / "state.json").read_text())
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(folder / "optimizer.safetensors")).items():
        if key != "_empty":
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    if scheduler is not None:
        scheduler.load_state_dict({**meta["scheduler"], "lr_lambdas": [None] * len(optimizer.param_groups)})
    logger.info("resumed state=%s step=%d", folder, meta["step"])
    return meta["step"]


def _images_tensor(images) -> torch.Tensor:
    return torch.stack([image_to_tensor(im) for im in images])


# ---- stage 1 ------------------------------------------------------------------------------------
def train_autoencoder(cfg: PretrainConfig, writer=None) -> BagelVAE:
    """Train (or resume, or load the finished) autoencoder; returns it with latent shift/scale set."""
    out = Path(cfg.out_dir) / "autoencoder"
    stage = cfg.autoencoder
    params = shapes_bagel_config(cfg.image_size).vae_config
    if (out / "final.json").is_file():
        return _finished_autoencoder(out, params)
    torch.manual_seed(cfg.seed)
    vae = BagelVAE(params)
    vae.model.requires_grad_(True)
    opt = torch.optim.AdamW(vae.model.parameters(), lr=stage.lr, betas=(0.9, 0.99))
    start = _load_state(out / "state", {"vae": vae.model}, opt)
    bar = tqdm(range(start, stage.steps), initial=start, total=stage.steps, desc="autoencoder", dynamic_ncols=True)
    for step in bar:
        tasks = _step_tasks(cfg, 1, step)
        x = _images_tensor([tasks.render(tasks.scene(0.2)[2]) for _ in range(stage.batch_size)])
        posterior = vae.model.encode(x).latent_dist
        recon = vae.model.decode(posterior.sample(generator=torch.Generator().manual_seed(step))).sample
        rec_loss = F.mse_loss(recon, x)
        loss = rec_loss + stage.kl_weight * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % cfg.log_every == 0:
            bar.set_postfix(recon=f"{rec_loss.item():.4f}")
            if writer is not None:
                writer.add_scalar("autoencoder/recon_mse", rec_loss.item(), step)
        if (step + 1) % cfg.save_every == 0 or step + 1 == stage.steps:
            _save_state(out / "state", {"vae": vae.model}, opt, step + 1)
    # Latent statistics on fresh renders: z ← scale·(z − shift) gives zero mean and unit variance.
    vae.model.requires_grad_(False).eval()
    tasks = _step_tasks(cfg, 1, -1)
    with torch.no_grad():
        z = torch.cat([vae.model.encode(_images_tensor([tasks.render(tasks.scene()[2]) for _ in range(64)]))
                       .latent_dist.mean for _ in range(stage.stats_images // 64)])
    shift, scale = z.mean().item(), 1.0 / z.std().item()
    vae.params = dataclasses.replace(params, shift_factor=shift, scale_factor=scale)
    with atomic_path(out / "vae.safetensors") as tmp:
        save_file(vae.model.state_dict(), str(tmp))
    atomic_write_json(out / "final.json", {"shift_factor": shift, "scale_factor": scale,
                                           "recon_mse": rec_loss.item()})
    logger.info("stage=autoencoder done recon_mse=%.5f shift=%.4f scale=%.4f", rec_loss.item(), shift, scale)
    return vae


def _finished_autoencoder(out: Path, params) -> BagelVAE:
    stats = json.loads((out / "final.json").read_text())
    vae = BagelVAE(dataclasses.replace(params, shift_factor=stats["shift_factor"], scale_factor=stats["scale_factor"]))
    vae.model.load_state_dict(load_file(str(out / "vae.safetensors")))
    return vae.eval()


# ---- stage 2 ------------------------------------------------------------------------------------
def joint_batch(model: Bagel, vae: BagelVAE, tokenizer, tasks: ShapesTasks, stage: JointStage, single_p: float,
                generator: torch.Generator):
    """One step's data: (text-to-image SequenceBatch, its flow targets, understanding SequenceBatch).

    Two batches, each padded to its own longest sample: understanding samples (ViT tokens) can be several
    times longer than text-to-image ones, and one padded batch would spend most of its time on padding.
    """
    cfg = model.config
    enc = lambda s: tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
    t2i = [tasks.text_to_image(single_p) for _ in range(stage.t2i_batch)]
    with torch.no_grad():
        latents = vae.encode(_images_tensor([ex.image for ex in t2i]), generator=generator)
    p = cfg.latent_patch_size
    h, w = latents.shape[-2] // p, latents.shape[-1] // p
    x0 = latents.unflatten(2, (h, p)).unflatten(4, (w, p)).permute(0, 2, 4, 3, 5, 1).reshape(len(t2i), h * w, -1)
    noise = torch.randn(x0.shape, generator=generator)
    t = flow.sample_training_timesteps(len(t2i), cfg.timestep_shift, generator=generator)
    x_t = flow.interpolate(x0, noise, t)
    drop = torch.rand(len(t2i), generator=generator) < stage.cfg_dropout
    samples = [([] if drop[i] else [text_segment(enc(ex.prompt), cfg)]) + [Latent(x_t[i], (h, w), t[i], noisy=True)]
               for i, ex in enumerate(t2i)]
    if stage.paired_match:
        n_pairs = round(stage.qa_batch * stage.match_share / 2)
        qas = [qa for _ in range(n_pairs) for qa in tasks.match_pair(single_p)]
        qas += [tasks.qa(single_p, match_share=0.0) for _ in range(stage.qa_batch - 2 * n_pairs)]
    else:
        qas = [tasks.qa(single_p, stage.match_share) for _ in range(stage.qa_batch)]
    understanding = [[VitImage(image_to_tensor(qa.image, cfg.vit_transform)), text_segment(enc(qa.question), cfg),
                      text_segment(enc(qa.answer), cfg, loss=True)] for qa in qas]
    return build_batch(samples, cfg), flow.velocity_target(x0, noise), build_batch(understanding, cfg)


def joint_losses(model: Bagel, t2i_batch, target: torch.Tensor, qa_batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(flow-matching MSE on the noisy latent tokens, token-mean CE on the answers)."""
    hidden = model(t2i_batch).hidden
    mse = (model.velocity(hidden[t2i_batch.noisy]) - target.reshape(-1, target.shape[-1])).pow(2).mean()
    hidden = model(qa_batch).hidden
    supervised = qa_batch.labels != IGNORE
    ce = F.cross_entropy(model.text_logits(hidden[supervised]), qa_batch.labels[supervised])
    return mse, ce


def patch_shape_batch(tasks: ShapesTasks, stage: JointStage,
                      config: BagelConfig) -> tuple[list[torch.Tensor], torch.Tensor]:
    """`stage.patch_batch` renders as ViT inputs and their per-patch shape labels, concatenated in ViT token order
    (scenes drawn as the autoencoder's are: a fifth of them single objects)."""
    scenes = [tasks.scene(0.2)[2] for _ in range(stage.patch_batch)]
    images = [image_to_tensor(tasks.render(scene), config.vit_transform) for scene in scenes]
    labels = [patch_shape_labels(scene, config.vit_max_num_patch_per_side) for scene in scenes]
    return images, torch.from_numpy(np.concatenate(labels))


def patch_shape_loss(model: Bagel, head: torch.nn.Linear, images: list[torch.Tensor],
                     labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(CE of the head on every ViT patch, accuracy on the patches that show an object)."""
    logits = head(model.vit_model(images)[0])
    on_object = labels != BACKGROUND
    accuracy = (logits.detach().argmax(-1) == labels)[on_object].float().mean()
    return F.cross_entropy(logits, labels), accuracy


def _init_weights(model: Bagel, init: Bagel) -> None:
    """Start from `init`; a ViT on another patch grid gets its learned position table resampled."""
    state = init.state_dict()
    key = "vit_model.vision_model.embeddings.position_embedding.weight"
    side = model.config.vit_max_num_patch_per_side
    if init.config.vit_max_num_patch_per_side != side:
        state[key] = resize_position_table(state[key], side)
        state["vit_pos_embed.pos_embed"] = model.vit_pos_embed.pos_embed  # fixed sin-cos: this grid's own
        logger.info("vit grid %d -> %d: position table resampled", init.config.vit_max_num_patch_per_side, side)
    model.load_state_dict(state)


def train_joint(cfg: PretrainConfig, vae: BagelVAE, writer=None, evaluate=None, name: str = "joint",
                init: tuple[Bagel, torch.nn.Linear] | None = None) -> tuple[Bagel, object, torch.nn.Linear]:
    """A joint stage (`cfg.joint`, or `cfg.focus` with name="focus") from random weights or from `init`, a
    previous stage's (EMA model, patch head): the head is carried so the ViT never sees a random head's gradient."""
    out = Path(cfg.out_dir) / name
    stage = getattr(cfg, name)
    stage_id = {"joint": 2, "focus": 3}[name]
    config = shapes_bagel_config(cfg.image_size, stage.vit_scale)
    config.vae_config = vae.params
    tokenizer = shapes_tokenizer(config)
    torch.manual_seed(cfg.seed)
    model = Bagel(config)
    head = torch.nn.Linear(config.vit_config.hidden_size, N_CLASSES)  # pretraining only: never shipped
    if init is not None:
        _init_weights(model, init[0])
        head.load_state_dict(init[1].state_dict())
    # The average starts at the initial weights, as if averaged once, so every step moves it by (1 − decay).
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(stage.ema_decay)).requires_grad_(False)
    averaged.n_averaged.fill_(1)
    ema = averaged.module
    modules = {"model": model, "ema": ema} | ({"patch_head": head} if stage.patch_shape_weight else {})
    params = [*model.parameters(), *(head.parameters() if stage.patch_shape_weight else ())]
    opt = torch.optim.AdamW(params, lr=stage.lr, betas=stage.betas, weight_decay=stage.weight_decay)
    schedule = get_cosine_with_min_lr_schedule_with_warmup(opt, stage.warmup_steps, stage.steps,
                                                           min_lr_rate=stage.min_lr_ratio)
    start = _load_state(out / "state", modules, opt, schedule)
    model.train()
    bar = tqdm(range(start, stage.steps), initial=start, total=stage.steps, desc=name, dynamic_ncols=True)
    t0 = time.time()
    for step in bar:
        curriculum = step < stage.single_object_until * stage.steps
        single_p = stage.single_object_p[0] if curriculum else stage.single_object_p[1]
        generator = torch.Generator().manual_seed(derive_seed(cfg.seed, stage_id, step))
        tasks = _step_tasks(cfg, stage_id, step)
        t2i_batch, target, qa_batch = joint_batch(model, vae, tokenizer, tasks, stage, single_p, generator)
        mse, ce = joint_losses(model, t2i_batch, target, qa_batch)
        loss = stage.mse_weight * mse + stage.ce_weight * ce
        metrics = {"mse": mse, "ce": ce}
        if stage.patch_shape_weight:
            patch_ce, metrics["patch_shape_acc"] = patch_shape_loss(
                model, head, *patch_shape_batch(tasks, stage, config))
            loss = loss + stage.patch_shape_weight * patch_ce
            metrics["patch_ce"] = patch_ce
        if not torch.isfinite(loss):
            losses = ", ".join(f"{k}={v.item()}" for k, v in metrics.items())
            raise FloatingPointError(f"non-finite loss at step {step} ({losses}); "
                                     f"resume from {out / 'state'} with a lower {name}.lr")
        lr = schedule.get_last_lr()[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
        opt.step()
        schedule.step()
        averaged.update_parameters(model)
        if step % cfg.log_every == 0:
            bar.set_postfix({k: f"{v.item():.3f}" for k, v in metrics.items() if k != "grad_norm"})
            logger.info("stage=%s step=%d %s lr=%.2e elapsed_s=%.0f", name, step,
                        " ".join(f"{k}={v.item():.4f}" for k, v in metrics.items()), lr, time.time() - t0)
            if writer is not None:
                for metric, value in metrics.items():
                    writer.add_scalar(f"{name}/{metric}", value.item(), step)
                writer.add_scalar(f"{name}/lr", lr, step)
        if (step + 1) % cfg.save_every == 0 or step + 1 == stage.steps:
            _save_state(out / "state", modules, opt, step + 1, schedule)
        if evaluate is not None and (step + 1) % cfg.eval_every == 0:
            evaluate(ema.eval(), vae, tokenizer, step + 1)
            model.train()
    return ema.eval(), tokenizer, head


def pretrain(cfg: PretrainConfig, writer=None, evaluate=None) -> Path:
    """All stages, then the shipped folder `<out_dir>/checkpoint` (HF-style, EMA weights)."""
    torch.set_num_threads(cfg.threads)
    t0 = time.time()
    vae = train_autoencoder(cfg, writer)
    model, tokenizer, head = train_joint(cfg, vae, writer, evaluate)
    if cfg.focus is not None:
        model, tokenizer, head = train_joint(cfg, vae, writer, evaluate, name="focus", init=(model, head))
    folder = Path(cfg.out_dir) / "checkpoint"
    save_bagel(folder, model, vae, tokenizer)
    logger.info("pretrain done checkpoint=%s wall_s=%.0f", folder, time.time() - t0)
    return folder
