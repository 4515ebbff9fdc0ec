"""Per-GPU memory of a recipe's training, for `launch/srum.py --dry-run`: model states under its ZeRO stage and world
size, and activations at its resolution and micro-batch with and without activation checkpointing.

Model states follow DeepSpeed's own accounting (`estimate_zero2/3_model_states_mem_needs`, printed beside ours):
with bf16 mixed precision each trainable parameter costs 2 bytes of bf16 gradient and 16 bytes of fp32 gradient,
master weight and Adam moments, partitioned over the ranks; the bf16 weights are replicated under ZeRO-2 and
partitioned under ZeRO-3 (which also gathers the largest layer whole). With fp32 training there is no master copy.
Activations come from the backend's measured per-token cost of a decoder layer; with checkpointing a layer keeps
only its input, and one layer's activations are alive again while it is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from srum.config import RunConfig

GB = 1e9


@dataclass(frozen=True)
class MemoryPlan:
    facts: object  # the backend's MemoryFacts
    zero_stage: int
    world: int
    bf16: bool
    micro_batch: int
    tokens: int  # per micro-batch: images × rows per image (2 for a guided update) × tokens per row
    params: float  # bytes per GPU
    gradients: float
    optimizer: float
    activations: float
    activations_checkpointed: float
    deepspeed_estimate: float  # DeepSpeed's model-state estimate per GPU (all parameters trainable, as it assumes)

    @property
    def model_states(self) -> float:
        return self.params + self.gradients + self.optimizer

    def total(self, checkpointing: bool) -> float:
        return self.model_states + (self.activations_checkpointed if checkpointing else self.activations)


def model_state_bytes(total: int, trainable: int, largest_layer: int, zero_stage: int, world: int,
                      bf16: bool) -> tuple[float, float, float]:
    """(parameters, gradients, optimizer state) bytes per GPU."""
    if bf16:
        params = 2 * total / world + 4 * largest_layer if zero_stage == 3 else 2 * total
        grads = (4 if zero_stage == 3 else 6) * trainable / world  # ZeRO-3 reduce-scatters straight into fp32
        optim = 12 * trainable / world  # fp32 master weights + Adam's two moments
    else:
        params = 4 * total / world + 4 * largest_layer if zero_stage == 3 else 4 * total
        grads = 4 * trainable / world
        optim = 8 * trainable / world
    return params, grads, optim


def deepspeed_estimate(total: int, largest_layer: int, zero_stage: int, world: int) -> float:
    """DeepSpeed's own per-GPU model-state estimate (no offload), for comparison."""
    if zero_stage == 3:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        return float(estimate_zero3_model_states_mem_needs(total, largest_layer, num_gpus_per_node=world,
                                                           cpu_offload=False)[1])
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    return float(estimate_zero2_model_states_mem_needs(total, num_gpus_per_node=world, cpu_offload=False)[1])


def plan_memory(cfg: RunConfig, world: int, zero_stage: int | None = None,
                facts: Any = None) -> MemoryPlan:
    """The plan under the recipe's ZeRO stage (or `zero_stage`); `facts` reuses the backend's answer for this recipe
    (counting parameters builds the model on the meta device)."""
    if facts is None:
        from srum.models.registry import backend_class

        facts = backend_class(cfg.model.backend).memory_facts(cfg.model.path, cfg.generate.resolution,
                                                              cfg.train.freeze_und, cfg.train.lora_rank)
    stage = zero_stage or cfg.train.zero_stage
    bf16 = cfg.train.dtype != "float32"
    element = 2 if bf16 else 4
    params, grads, optim = model_state_bytes(facts.params_total, facts.params_trainable, facts.largest_layer,
                                             stage, world, bf16)
    params += element * facts.vae_params  # the frozen autoencoder encodes the training images
    # a guided update runs each image twice, with and without its prompt (objective.guided)
    tokens = facts.tokens_per_image * cfg.train.micro_batch_size * (2 if cfg.objective.guided else 1)
    per_layer = facts.layer_elements_per_token * tokens * element
    head = 4 * facts.hidden * tokens * element  # final norm and velocity head
    return MemoryPlan(facts, stage, world, bf16, cfg.train.micro_batch_size, tokens, params, grads, optim,
                      activations=facts.layers * per_layer + head,
                      activations_checkpointed=facts.layers * facts.hidden * tokens * element + per_layer + head,
                      deepspeed_estimate=deepspeed_estimate(facts.params_total, facts.largest_layer, stage, world))


def _bytes(n: float) -> str:
    return f"{n / GB:.1f} GB" if n >= 0.1 * GB else f"{n / 1e6:.1f} MB"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e6:.2f} M"


def describe_memory(cfg: RunConfig, world: int, gpu_gb: float = 80.0) -> str:
    """The plan for this recipe and world size; on GPUs, whether it fits a `gpu_gb` GPU and which nearby ZeRO and
    checkpointing settings would."""
    plan = plan_memory(cfg, world)
    f = plan.facts
    ckpt = cfg.train.activation_checkpointing
    on_gpu = cfg.model.device != "cpu"
    estimator = (f" (DeepSpeed's estimator, all parameters trainable: {_bytes(plan.deepspeed_estimate)})"
                 if plan.bf16 else "")
    lines = [
        f"memory plan per {'GPU' if on_gpu else 'rank'}, from {f.source}:",
        f"  parameters {_count(f.params_total)} (trainable {_count(f.params_trainable)}; largest decoder layer "
        f"{_count(f.largest_layer)}; frozen VAE {_count(f.vae_params)})",
        f"  ZeRO-{plan.zero_stage} on {world} rank(s), {'bf16 mixed precision' if plan.bf16 else 'fp32'}: "
        f"weights {_bytes(plan.params)}, gradients {_bytes(plan.gradients)}, optimizer {_bytes(plan.optimizer)} = "
        f"model states {_bytes(plan.model_states)}{estimator}",
        f"  activations at {cfg.generate.resolution} px, micro-batch {plan.micro_batch}"
        f"{' × 2 rows (guided)' if cfg.objective.guided else ''} ({plan.tokens} tokens): "
        f"{_bytes(plan.activations)} without checkpointing, {_bytes(plan.activations_checkpointed)} with "
        f"(train.activation_checkpointing={str(ckpt).lower()})",
        f"  total ≈ {_bytes(plan.total(ckpt))} per {'GPU' if on_gpu else 'rank'}"
        + (": " + ("fits" if plan.total(ckpt) < gpu_gb * GB else "does NOT fit") + f" a {gpu_gb:.0f} GB GPU (before "
           "the allocator's fragmentation and communication buffers, typically a few GB)" if on_gpu else ""),
    ]
    if on_gpu:
        options = []
        for stage in (2, 3):
            alt = plan_memory(cfg, world, stage, plan.facts)
            for c in (False, True):
                options.append(f"ZeRO-{stage} {'with' if c else 'without'} checkpointing {_bytes(alt.total(c))}"
                               + (" (fits)" if alt.total(c) < gpu_gb * GB else ""))
        lines.append(f"  on {world} × {gpu_gb:.0f} GB: " + "; ".join(options))
    return "\n".join(lines)
