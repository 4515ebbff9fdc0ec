"""Stage 5 engine: DeepSpeed ZeRO-2/3 around the trainable model, resume checkpoints, HF-style export.

CPU runs use gloo with fp32 and DeepSpeed's torch AdamW (`torch_adam`, no op build); GPU runs use
NCCL with bf16. Only the generation side trains unless `train.freeze_und=false` (the backend says which parameters
those are: `UnifiedModel.is_generation_parameter`). With `train.lora_rank > 0` only LoRA adapters on the backend's
`lora_targets` train (`srum.lora`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from srum import safe_checkpoint
from srum.config import TrainConfig
from srum.models.interface import UnifiedModel
from srum.utils.dist import DistInfo

logger = logging.getLogger(__name__)


def set_trainable(model: torch.nn.Module, freeze_und: bool,
                  is_generation: Callable[[str], bool]) -> list[torch.nn.Parameter]:
    """Mark trainable parameters (all, or the generation side only) and return them."""
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(not freeze_und or is_generation(name))
        if p.requires_grad:
            params.append(p)
    if not params:
        raise ValueError("no trainable parameters: the model has no generation-side parameters to train")
    return params


def deepspeed_config(cfg: TrainConfig, world_size: int, dtype: torch.dtype) -> dict:
    """The DeepSpeed json, from the train section, with the user's `train.ds_config` merged over it."""
    return merged(_base_deepspeed_config(cfg, world_size, dtype), cfg.ds_config)


def merged(base: dict, overlay: dict) -> dict:
    """`base` with `overlay`'s values put in, nested dicts merged key by key."""
    out = dict(base)
    for key, value in overlay.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _base_deepspeed_config(cfg: TrainConfig, world_size: int, dtype: torch.dtype) -> dict:
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.grad_accum_steps,
        "train_batch_size": cfg.micro_batch_size * cfg.grad_accum_steps * world_size,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage, "overlap_comm": False, "contiguous_gradients": True},
        "bf16": {"enabled": dtype == torch.bfloat16},
        "optimizer": {"type": "AdamW", "params": {"lr": cfg.lr, "betas": list(cfg.betas), "eps": cfg.eps,
                                                   "weight_decay": cfg.weight_decay, "torch_adam": True}},
        "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 0.0, "warmup_max_lr": cfg.lr,
                                                     "warmup_num_steps": max(cfg.warmup_steps, 1),
                                                     "warmup_type": "linear"}},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def without_shm_comm() -> None:
    """Keep DeepSpeed's CPU shared-memory all-reduce unbuilt: only its inference all-reduce uses it (ZeRO training
    goes through torch.distributed), and building it JIT-compiles C++, prints a line per rank and leaves two 66 MB
    `deepspeed_allreduce_buffer_*` files in /dev/shm after every run, clean exits included."""
    import importlib

    # importlib: `import deepspeed.comm.torch as m` binds the package attribute `torch`, i.e. torch itself
    importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None


def frozen_reference(unified: UnifiedModel, cfg: TrainConfig, dist: DistInfo, dtype: torch.dtype) -> UnifiedModel:
    """A frozen copy for the `kl` constraint: sharded by a ZeRO-3 inference engine (no optimizer) under
    stage 3, so it costs each rank 1/world of its size; the plain module under stage 2."""
    model = unified.trainable_module()
    model.requires_grad_(False).eval()
    if cfg.zero_stage != 3:
        return unified
    import deepspeed

    without_shm_comm()
    config = {k: v for k, v in deepspeed_config(cfg, dist.world_size, dtype).items()
              if k not in ("optimizer", "scheduler", "gradient_clipping")}
    engine, *_ = deepspeed.initialize(model=model, config=config)
    engine.eval()
    return unified.training_view(engine)


def prune_checkpoints(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` `step*` checkpoint folders (never the one `latest` names); returns them."""
    latest = (folder / "latest").read_text().strip() if (folder / "latest").is_file() else None
    steps = sorted(p for p in folder.glob("step*") if p.is_dir())
    removed = [p for p in steps[:max(len(steps) - keep, 0)] if p.name != latest]
    for p in removed:
        shutil.rmtree(p)
    return removed


class TrainEngine:
    """A DeepSpeed engine over a unified model's trainable module, with the few operations the loop needs."""

    def __init__(self, unified: UnifiedModel, cfg: TrainConfig, dist: DistInfo, dtype: torch.dtype) -> None:
        import deepspeed

        self.cfg, self.dist, self.unified = cfg, dist, unified
        model = unified.trainable_module()
        model.train()
        if cfg.lora_rank > 0:
            from srum.lora import add_lora

            params = add_lora(model, cfg.lora_rank, cfg.lora_alpha, unified.lora_targets)
        else:
            params = set_trainable(model, cfg.freeze_und, unified.is_generation_parameter)
        if cfg.activation_checkpointing:
            if not hasattr(model, "set_activation_checkpointing"):
                raise ValueError(f"train.activation_checkpointing=true: {type(model).__name__} cannot recompute its "
                                 "activations; set it to false")
            model.set_activation_checkpointing(True)
        without_shm_comm()
        n_train = sum(p.numel() for p in params)
        self.engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=params,
                                                    config=deepspeed_config(cfg, dist.world_size, dtype))
        safe_checkpoint.install(self.engine)
        logger.info("engine zero_stage=%d world=%d trainable_params=%d dtype=%s", cfg.zero_stage, dist.world_size,
                    n_train, dtype)

    @property
    def module(self) -> torch.nn.Module:
        return self.engine.module

    def model_view(self) -> UnifiedModel:
        """The unified model whose training forwards run through the engine."""
        return self.unified.training_view(self.engine)

    def backward_and_step(self, loss: torch.Tensor) -> float:
        """Backward, then an optimiser step at accumulation boundaries; returns the last global grad norm."""
        self.engine.backward(loss)
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    @property
    def lr(self) -> float:
        return self.engine.get_lr()[0]

    @property
    def skipped_steps(self) -> int:
        """Optimiser steps DeepSpeed skipped because the gradients overflowed (inf/NaN)."""
        return int(self.engine.skipped_steps)

    def save(self, folder: Path, step: int, keep: int | None = None, metrics: dict[str, float] | None = None) -> None:
        """A resume checkpoint (DeepSpeed's own format: its optimizer and RNG state are part of it, and the step's
        metrics, so a resume that finds training done still reports them); with `keep`, older ones beyond the
        newest `keep` are deleted once every rank has written this one."""
        self.engine.save_checkpoint(str(folder), tag=f"step{step:07d}",
                                    client_state={"step": step, "metrics": dict(metrics or {})})
        if keep is not None:
            self.dist.barrier()
            if self.dist.is_main:
                prune_checkpoints(folder, keep)
            self.dist.barrier()

    def load(self, folder: Path) -> tuple[int, dict[str, float]]:
        """Resume from the latest checkpoint in `folder`: (its step, its metrics); (0, {}) when there is none.

        Every rank first checks the files it will read (present, intact zip archives); unless all ranks find theirs
        intact, all of them fall back to the previous checkpoint, with a warning. Files are then read with
        srum.safe_checkpoint's loader, which refuses anything but tensors and plain data."""
        from srum.utils.dist import all_gather_objects

        while (folder / "latest").is_file():
            tag = (folder / "latest").read_text().strip()
            problem = safe_checkpoint.damage(folder / tag, self.dist.rank)
            problems = [p for p in all_gather_objects(problem, self.dist) if p]
            if not problems:
                break
            older = [p.name for p in sorted(folder.glob("step*")) if p.is_dir() and p.name < tag]
            self.dist.barrier()
            if self.dist.is_main:
                logger.warning("checkpoint %s is damaged (%s); falling back to %s", folder / tag, problems[0],
                               older[-1] if older else "step 0")
                self.point_latest(folder, older[-1] if older else None)
            self.dist.barrier()
        if not (folder / "latest").is_file():
            return 0, {}
        _, client = self.engine.load_checkpoint(str(folder))
        step = int(client["step"])
        logger.debug("resumed checkpoint=%s step=%d", folder, step)
        return step, dict(client.get("metrics", {}))

    def point_latest(self, folder: Path, tag: str | None) -> None:
        """Make `tag` the checkpoint a resume loads (None: no checkpoint, start from step 0)."""
        from srum.utils.io import atomic_write_text

        if tag is None:
            (folder / "latest").unlink(missing_ok=True)
        else:
            atomic_write_text(folder / "latest", tag)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """Every parameter and buffer, whole, on CPU (gathered from the ZeRO-3 shards when needed), under the
        base model's names (LoRA adapters merged in)."""
        module = self.engine.module
        gathered = contextlib.nullcontext()
        if self.cfg.zero_stage == 3:
            import deepspeed

            gathered = deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None)
        with gathered:
            state = {k: v.detach().clone().cpu() for k, v in module.state_dict().items()}
        if self.cfg.lora_rank > 0:
            from srum.lora import merged_state_dict

            state = merged_state_dict(state, self.cfg.lora_rank, self.cfg.lora_alpha)
        return state

    def reference_view(self) -> UnifiedModel:
        """With LoRA: the unified model with its adapters off, i.e. the frozen base model (for `kl`)."""
        from srum.lora import adapters_disabled

        def forward(*args, **kwargs):
            with adapters_disabled(self.engine.module):
                return self.engine(*args, **kwargs)

        return self.unified.training_view(forward)

    def partitioned_parameter_numel(self) -> int:
        """Parameter values this rank holds (ZeRO-3 shards them; ZeRO-2 keeps full copies)."""
        total = 0
        for p in self.engine.module.parameters():
            total += p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel()
        return total
