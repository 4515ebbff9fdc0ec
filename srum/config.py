"""The RunConfig tree: one structured dataclass per pipeline stage, loaded from a recipe YAML plus overrides.

Defaults are the official SRUM values (shared/design/srum.md; section numbers cited per field group), so a recipe
only states what differs. `load_config` validates everything once at start: unknown keys, wrong types, bad enum
values, missing required values and bad combinations all raise `ConfigError` naming the dotted key and the fix.
File existence is checked separately by `check_paths`, so tests and dry runs can build configs without weights.
"""

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

from srum.models.registry import BACKENDS  # names only; no model code is imported
from srum.rewards.registry import MIX, SCORERS  # names only; no scorer is imported
from srum.worlds.registry import WORLDS, is_world, world_for  # names only; no world is imported here
from srum.utils.io import atomic_write_text
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16")
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
# A str, not an Enum: OmegaConf matches enum *names*, and "global" is a Python keyword.
CFG_RENORM_TYPES: tuple[str, ...] = ("global", "channel", "text_channel")

# Example values shown when a required key is missing.
_REQUIRED_HINTS: dict[str, str] = {
    "model.path": "/path/to/BAGEL-7B-MoT",
    "regions.sam_path": "/path/to/sam-vit-huge",
    "generate.prompts": "/path/to/train_comp.json",
}


class ConfigError(ValueError):
    """A config value or combination is invalid; the message names the dotted key and what to change."""


class JudgeMode(str, Enum):
    logits = "logits"  # expected score over the answer tokens' distribution: no parsing, never fails
    text = "text"  # official: greedy answer text, parse "Score:" lines, retry, counted fallback


class Constraint(str, Enum):
    kl = "kl"  # velocity match to a frozen reference (objective.kl_reference; the paper's stated "KL" term)
    anchor = "anchor"  # official: unweighted flow matching to the same self-generated image
    none = "none"


class KlReference(str, Enum):
    start = "start"  # the round's starting model: a trust region around each round's start (one round: the base)
    base = "base"  # model.path in every round: online rounds held near the starting checkpoint, as Flow-GRPO's KL
    # term holds the policy near the pretrained model however many updates it has taken


class TrainStart(str, Enum):
    previous = "previous"  # each round trains on from the round before's export: the rounds compound
    base = "base"  # every round trains model.path afresh, on samples the latest model drew (STaR's restart,
    # Zelikman et al. 2022; with train.replay_rounds, on every round's samples): no round trains on a model
    # that earlier rounds have already fitted to its own images


class RewardMapKind(str, Enum):
    official = "official"  # max over a 0.5 base, times (g+1)/2: negative region scores are inert (srum.md §2)
    signed = "signed"  # centred at 0 so bad regions lower the weight (srum.md §5.1-2)


class ObjectiveKind(str, Enum):
    official = "official"  # reward-weighted flow matching with the map as positive weights (srum.md §3.3)
    group_relative = "group_relative"  # per-prompt normalised, signed per-token advantages as the weights
    nft = "nft"  # DiffusionNFT: implicit positive/negative policies around the round's starting model
    best_of = "best_of"  # RAFT / expert iteration: plain flow matching on the best images of each prompt's group
    flow_grpo = "flow_grpo"  # Flow-GRPO: clipped policy gradient on the SDE steps of the rollouts' own trajectories
    dpo = "dpo"  # Diffusion-DPO: preference pairs of each group's best and worst images against the round's start
    # the velocity learns the step judge guidance would take: the round's start's velocity moved by the gradient of
    # its own judge's log-odds (srum.guidance), regressed on the round's samples re-noised; reward maps are not read
    judge_distill = "judge_distill"
    # DRaFT: fresh images of the round's prompts drawn with gradients through the sampler's last steps, and the
    # model's own judge's log-odds that each shows its prompt ascended (srum.draft); reward maps are not read
    draft = "draft"

    @property
    def needs_start(self) -> bool:
        """Whether the objective compares the trained model with the round's starting model (a frozen copy)."""
        return self in (ObjectiveKind.nft, ObjectiveKind.flow_grpo, ObjectiveKind.dpo, ObjectiveKind.judge_distill)


class Optimality(str, Enum):
    group = "group"  # DiffusionNFT's default: r from the advantage within the prompt's group
    map = "map"  # r = (M + 1)/2 from the signed reward map itself: absolute, so an image is not pulled for merely
    # beating a group of flawed ones


class GenerateSource(str, Enum):
    model = "model"  # the model samples its own images (SRUM)
    world = "world"  # the prompt world renders correct images: the supervised capacity reference, not SRUM


class RegionProposer(str, Enum):
    sam = "sam"  # SAM automatic mask generator (official)
    world = "world"  # the prompt world's own proposer (generate.prompts names the world)


class DistBackend(str, Enum):
    auto = "auto"  # nccl when CUDA is available, else gloo
    gloo = "gloo"
    nccl = "nccl"


# eval.judge's built-in names (srum.evaluation.judges.JUDGES; a test keeps them equal); a prompt world's name picks
# its exact judge.
EVAL_JUDGES = ("vlm",  # official protocol: a VLM (Qwen2.5-VL) rates 0-100 (srum.md §4)
               "official")  # T2I-CompBench's own metrics (BLIP-VQA, CLIPScore, detector)


class EvalVariant(str, Enum):
    think = "think"
    no_think = "no_think"


def _check_pair(key: str, value: Any, lo: float | None = None, hi: float | None = None) -> tuple[float, float]:
    """Return `value` as a 2-tuple of floats; OmegaConf < 2.4 hands tuple fields over as lists."""
    pair = tuple(float(v) for v in value)
    if len(pair) != 2:
        raise ConfigError(f"{key}={list(value)} must have exactly 2 numbers")
    for v in pair:
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ConfigError(f"{key}={list(pair)}: each value must lie in [{lo}, {hi}]")
    return pair  # type: ignore[return-value]


def _check_positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}={value} must be {'>= 0' if allow_zero else '> 0'}")


@dataclass
class ModelConfig:
    """Which unified model to load and where it lives."""

    backend: str = "bagel"  # the model backend by name (srum.models.registry.BACKENDS: bagel)
    path: str = MISSING  # local folder with the weights (BAGEL: ema.safetensors, ae.safetensors, tokenizer, configs)
    dtype: str = "auto"  # parameter dtype: auto (fp32 on CPU, bf16 on GPU) | float32 | bfloat16
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"model.backend={self.backend!r} is not a known backend; expected one of {sorted(BACKENDS)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"model.dtype={self.dtype!r}; expected one of {list(DTYPES)}")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ConfigError(f"model.device={dev!r}; expected auto, cpu, cuda or cuda:N")


@dataclass
class GenerateConfig:
    """Stage 1: one image per prompt with the base model (srum.md §1.2)."""

    # SRUM's train_comp.json, a folder of T2I-CompBench <category>_<split>.txt, or a prompt world's name (shapes)
    prompts: str = MISSING
    split: str = "train"  # for a prompt folder or a world: which split to read
    limit_per_category: int | None = None  # at most this many prompts per category (None: all)
    think: bool = True  # write a plan first, then generate conditioned on it
    max_think_tokens: int = 1000  # greedy plan length cap
    images_per_prompt: int = 1  # images sampled per prompt (group-relative objectives compare them: K)
    resolution: int = 1024  # square side in pixels; a multiple of 16 (one latent token per 16 px)
    num_timesteps: int = 50  # grid points from t=1 to t=0: num_timesteps - 1 Euler steps
    timestep_shift: float = 3.0  # t' = s*t / (1 + (s-1)*t)
    cfg_text_scale: float = 4.0  # text classifier-free guidance scale
    cfg_img_scale: float = 1.0  # 1.0 = off
    cfg_interval: tuple[float, float] = (0.4, 1.0)  # guidance active only for lo < t <= hi
    cfg_renorm_type: str = "global"  # one of CFG_RENORM_TYPES
    cfg_renorm_min: float = 0.0  # lower bound of the CFG renorm factor (0: full renorm)
    batch_size: int = 1  # prompts per forward on each rank
    seed: int = 42  # image j of prompt item i gets seed + i·images_per_prompt + j
    # A finished round-1 `generate` folder of a run with the same model and generate settings (another ablation
    # variant): its images are linked instead of redrawn. Checked against that folder's manifest at start.
    reuse_from: str | None = None
    # model: the model's own samples; world: ground-truth renders from the prompt world (capacity reference only)
    source: GenerateSource = GenerateSource.model
    # true: an image's training latent is the model's autoencoder encoding of the saved PNG (one posterior sample,
    # seeded by the image's seed), as official SRUM trains on its saved files and as renders are always encoded;
    # false: the sampler's own final latent, which decodes to the same picture but carries the model's own latent
    # idiosyncrasies (on shapes-tiny they make self-distillation decline; see docs/reward.md)
    reencode: bool = False
    # > 0: rollouts take stochastic SDE steps at this noise level a (σ_t = a·√(t/(1 − t)), Flow-GRPO's 0.7) and keep
    # their trajectories, which objective.kind=flow_grpo trains on; 0: the deterministic Euler sampler
    sde_noise: float = 0.0
    # > 0: judge guidance (srum.guidance): while the flow time is above judge_guidance_until, every sampler step heads
    # for its clean estimate moved this far (latent RMS units) along the gradient of the model's own judge's log-odds
    # that the image shows its prompt (the judge's global question); 0: the plain sampler
    judge_guidance: float = 0.0
    judge_guidance_until: float = 0.5  # guidance acts at flow times above this (1 = noise), where layout is chosen

    def __post_init__(self) -> None:
        self.cfg_interval = _check_pair("generate.cfg_interval", self.cfg_interval, 0.0, 1.0)
        if self.cfg_interval[0] >= self.cfg_interval[1]:
            raise ConfigError(f"generate.cfg_interval={list(self.cfg_interval)}: lo must be < hi")
        if self.cfg_renorm_type not in CFG_RENORM_TYPES:
            raise ConfigError(f"generate.cfg_renorm_type={self.cfg_renorm_type!r}; expected one of {list(CFG_RENORM_TYPES)}")
        if self.resolution <= 0 or self.resolution % 16:
            raise ConfigError(f"generate.resolution={self.resolution} must be a positive multiple of 16")
        if self.num_timesteps < 2:
            raise ConfigError(f"generate.num_timesteps={self.num_timesteps} must be >= 2 (it counts grid points)")
        if not 0.0 <= self.cfg_renorm_min <= 1.0:
            raise ConfigError(f"generate.cfg_renorm_min={self.cfg_renorm_min} must lie in [0, 1]")
        for key in ("images_per_prompt", "batch_size", "max_think_tokens"):
            _check_positive(f"generate.{key}", getattr(self, key))
        if self.limit_per_category is not None:
            _check_positive("generate.limit_per_category", self.limit_per_category)
        for key in ("timestep_shift", "cfg_text_scale", "cfg_img_scale"):
            _check_positive(f"generate.{key}", getattr(self, key))
        _check_positive("generate.sde_noise", self.sde_noise, allow_zero=True)
        if self.sde_noise > 0 and self.source == GenerateSource.world:
            raise ConfigError(f"generate.sde_noise={self.sde_noise} with generate.source=world: renders have no "
                              "sampling trajectory; set generate.sde_noise=0")
        _check_positive("generate.judge_guidance", self.judge_guidance, allow_zero=True)
        if not 0.0 <= self.judge_guidance_until < 1.0:
            raise ConfigError(f"generate.judge_guidance_until={self.judge_guidance_until} must lie in [0, 1)")
        if self.judge_guidance > 0 and (self.source == GenerateSource.world or self.sde_noise > 0):
            raise ConfigError(f"generate.judge_guidance={self.judge_guidance} steers the model's deterministic "
                              "sampler: renders have no sampler, and SDE rollouts must be the policy's own steps "
                              "(objective.kind=flow_grpo compares with it); set generate.judge_guidance=0")


@dataclass
class RegionsConfig:
    """Stage 2a: region proposals per image (srum.md §1.3); SAM settings are the automatic generator's defaults."""

    # sam (official; regions.sam_path) | world (the prompt world's own proposer, exact and cheap for its images)
    proposer: RegionProposer = RegionProposer.sam
    sam_path: str | None = None  # local transformers SamModel folder (ViT-H); required when proposer=sam
    points_per_side: int = 32  # SAM point grid: points per image side
    points_per_batch: int = 64  # SAM prompts per forward
    pred_iou_thresh: float = 0.88  # SAM: keep masks whose predicted IoU is at least this
    stability_score_thresh: float = 0.95  # SAM: keep masks whose stability score is at least this
    stability_score_offset: float = 1.0  # SAM: logit offset of the stability score
    box_nms_thresh: float = 0.7  # box NMS IoU threshold between kept regions
    max_regions: int = 10  # keep the largest masks by pixel area
    min_area_frac: float = 0.0  # drop regions smaller than this fraction of the image (official: no minimum)
    # Where a box ends: official (x2/y2 = the region's last pixel, as the official pipeline's SAM XYWH → XYXY gives;
    # the map's [x1, x2) slice then leaves that column and row out) | exclusive (one past it: the whole region).
    box_end: str = "official"

    def __post_init__(self) -> None:
        if self.box_end not in ("official", "exclusive"):
            raise ConfigError(f"regions.box_end={self.box_end!r}; expected 'official' or 'exclusive'")
        for key in ("points_per_side", "points_per_batch", "max_regions"):
            _check_positive(f"regions.{key}", getattr(self, key))
        for key in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"):
            v = getattr(self, key)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"regions.{key}={v} must lie in [0, 1]")
        if not 0.0 <= self.min_area_frac < 1.0:
            raise ConfigError(f"regions.min_area_frac={self.min_area_frac} must lie in [0, 1); 0 keeps every region")


@dataclass
class JudgeConfig:
    """Stage 2b: the model scores its own images, per region and globally, in [-1, 1] (srum.md §1.4)."""

    # text (free-text answers, parsed; official) | logits (expected score over answer tokens, one forward)
    mode: JudgeMode = JudgeMode.text
    think: bool = True  # reason inside think tags before answering
    global_layout: bool = True  # also ask for the global layout score
    sample_level_only: bool = False  # ablation: one whole-image score replaces the regional step
    max_regional_tokens: int = 4096  # thinking + answer
    max_global_tokens: int = 1024  # global judgement: thinking + answer
    max_retries: int = 5  # text mode: retries when nothing parses
    retry_temperature: float = 0.0  # 0 = greedy retries (official; they repeat the same answer)
    clamp_scores: bool = False  # official never clamps to [-1, 1]
    batch_size: int = 1  # questions per understanding forward
    # Question set: official (text, BAGEL-7B) | digits (logits, BAGEL-7B, one digit 0-9) | a prompt world's name
    # (its tiny model's own questions, e.g. shapes: logits, yes/no).
    # None resolves by mode: official for text, digits for logits.
    templates: str | None = None
    region_margin: float = 0.1  # a region is shown as its box's crop, widened by this fraction of its size per side

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigError(f"judge.max_retries={self.max_retries} must be >= 0")
        template_names = ("official", "digits", *WORLDS)  # kept equal to judge.TEMPLATES + worlds by a test
        if self.template_set not in template_names:
            raise ConfigError(f"judge.templates={self.templates!r}; expected one of {list(template_names)}")
        if self.template_set == "official" and self.mode == JudgeMode.logits:
            raise ConfigError(
                "judge.templates=official asks for free-text answers but judge.mode=logits: "
                "set judge.mode=text, or judge.templates=digits for the logits mode"
            )
        _check_positive("judge.region_margin", self.region_margin, allow_zero=True)
        _check_positive("judge.retry_temperature", self.retry_temperature, allow_zero=True)
        for key in ("max_regional_tokens", "max_global_tokens", "batch_size"):
            _check_positive(f"judge.{key}", getattr(self, key))

    @property
    def template_set(self) -> str:
        """`templates`, or the mode's default when unset (official for text, digits for logits).

        Resolved here rather than written back in __post_init__: OmegaConf builds the schema from a default
        instance, so a written-back default would be frozen before a `judge.mode=...` override arrives.
        """
        if self.templates is not None:
            return self.templates
        return "digits" if self.mode == JudgeMode.logits else "official"


@dataclass
class RewardConfig:
    """Stage 3: scores → per-pixel reward map (srum.md §1.5-1.6, §2)."""

    # Who scores the images the map is built from (srum.rewards.registry.SCORERS): self (the model judges its own
    # images: SRUM) | oracle (the prompt world's exact judge: an upper bound, not SRUM) | uniform (weight 1: self-
    # distillation) | mix (the scorers of reward.mix, blended by weight). All go through the same map and training.
    source: str = "self"
    # reward.source=mix: scorer name → weight, e.g. {self: 0.7, oracle: 0.3}
    mix: dict[str, float] = field(default_factory=dict)
    # official (max over a 0.5 base, times (g+1)/2; srum.md §2) | signed (centred at 0: bad regions lower it)
    map: RewardMapKind = RewardMapKind.official
    binarize: bool = False  # region score → +1 if > 0 else -1 (official computes it but never uses it)
    drop_zero_global: bool = True  # official formatter drops images whose global score is exactly 0
    missing_global_score: float = 0.0  # g used when an image has no global score
    use_masks: bool = False  # weight a region's mask pixels instead of its whole box (srum.md §5.6; official: boxes)
    use_regions: bool = True  # false: region scores are ignored (the global-reward-only ablation)
    # reward.source=oracle: attributes the world's oracle does not check, e.g. [shape] (a diagnostic: reward only
    # what the model can control; ShapesWorld: shape, color, texture, size)
    oracle_ignore: list[str] = field(default_factory=list)
    # drop images whose global score is below this (rejection sampling; with the oracle, 1.0 keeps only images that
    # meet every requirement of the prompt they are trained on); null: keep them
    min_global: float | None = None
    # hindsight relabelling: attributes a prompt world may change in an image's prompt, e.g. [shape, relation]; the
    # image is trained on the variant its judge scores best (srum.rewards.hindsight); []: its own prompt
    hindsight: list[str] = field(default_factory=list)
    # with hindsight: re-weight the trained images so their labels' attribute values (the world's
    # attribute_values) are as frequent as in the prompts asked, each weight within [1/this, this] of their mean of
    # 1 (srum.rewards.hindsight); null: no re-weighting
    hindsight_balance: float | None = None

    def __post_init__(self) -> None:
        if self.source not in (*SCORERS, MIX):
            raise ConfigError(f"reward.source={self.source!r}; expected one of {[*SCORERS, MIX]}")
        if (self.source == MIX) != bool(self.mix):
            raise ConfigError("reward.mix names the scorers of reward.source=mix: set both (e.g. reward.source=mix "
                              f"reward.mix='{{self: 0.7, oracle: 0.3}}') or neither (reward.mix={dict(self.mix)})")
        for name, weight in self.mix.items():
            if name not in SCORERS or name == "uniform":
                raise ConfigError(f"reward.mix.{name}: expected a scorer of {[s for s in SCORERS if s != 'uniform']} "
                                  "(uniform scores nothing, so it cannot be blended)")
            if not weight > 0:
                raise ConfigError(f"reward.mix.{name}={weight} must be > 0")

        if self.min_global is not None and not -1.0 <= self.min_global <= 1.0:
            raise ConfigError(f"reward.min_global={self.min_global} must lie in the judge's range [-1, 1] (or null)")
        if self.hindsight and self.source == "uniform":
            raise ConfigError(f"reward.hindsight={list(self.hindsight)} chooses labels by their reward: "
                              "reward.source=uniform scores nothing")
        if self.hindsight_balance is not None and not self.hindsight:
            raise ConfigError(f"reward.hindsight_balance={self.hindsight_balance} re-weights hindsight's labels: set "
                              "reward.hindsight too (e.g. reward.hindsight=[shape])")
        if self.hindsight_balance is not None and not self.hindsight_balance >= 1.0:
            raise ConfigError(f"reward.hindsight_balance={self.hindsight_balance} bounds each weight to [1/c, c]: it "
                              "must be ≥ 1 (1: no re-weighting)")
        if self.oracle_ignore and "oracle" not in self.scorers:
            raise ConfigError(f"reward.oracle_ignore={list(self.oracle_ignore)} is read only by the oracle scorer: "
                              f"set reward.source=oracle (got {self.source})")

    @property
    def scorers(self) -> list[str]:
        """The scorers this reward asks: the source, or the blend's."""
        return sorted(self.mix) if self.source == MIX else [self.source]


@dataclass
class ObjectiveConfig:
    """Stage 4: reward-weighted flow matching plus a constraint term (srum.md §3.2-3.4), or a signed variant."""

    # official | group_relative | nft | best_of | flow_grpo | dpo | judge_distill | draft
    kind: ObjectiveKind = ObjectiveKind.official
    # anchor (official: unweighted flow matching to the same image, weight anchor_weight) | kl (velocity match to a
    # frozen copy, weight kl_weight) | none
    constraint: Constraint = Constraint.anchor
    anchor_weight: float = 0.5  # λ of the official run (code default 0.1)
    kl_weight: float = 0.0  # weight of ||v_θ − v_ref||² against the frozen reference
    kl_reference: KlReference = KlReference.start  # constraint=kl: start (each round's start) | base (model.path)
    timestep_shift: float = 1.0  # official trains without shift
    text_dropout: float = 0.1  # drop the prompt with this probability (keeps CFG working)
    # group_relative / nft: advantage = (map − group mean) / max(group std, adv_std_floor), clipped to ±adv_clip.
    adv_std_floor: float = 0.1  # a group whose images all score alike gives small advantages, not huge ones
    adv_clip: float = 2.0  # advantages are clipped to ±adv_clip (nft: also the scale of the optimality probability)
    nft_beta: float = 1.0  # DiffusionNFT's β: how far the implicit policies sit from the starting model
    optimality: Optimality = Optimality.group  # nft: group | map (see Optimality; map needs reward.map=signed)
    # nft: false holds tokens below neutral (r < ½) at the starting model instead of pushing them away,
    # r → max(r, ½): the ablation of the negative half that DiffusionNFT argues is essential
    nft_negative: bool = True
    # group_relative / nft: each micro-batch holds whole groups, and a group's images share one timestep, noise and
    # prompt-dropout draw (common random numbers), so the noise part of their flow targets, which their advantages
    # weigh with opposite signs, largely cancels instead of drowning the reward signal
    group_noise: bool = False
    # train the velocity the sampler steps with (text CFG as generate applies it) instead of the conditional branch
    # alone: the samples came from the guided policy, so that is the policy the reward should move
    guided: bool = False
    # best_of: the images kept per prompt group (those with the highest image reward, and only above the group's
    # lowest, so a group whose images all score alike teaches nothing); the rest are not trained on
    keep_top: int = 1
    # flow_grpo: the policy ratio of each token's step is clipped to [1 − pg_clip, 1 + pg_clip] (PPO's trust region)
    pg_clip: float = 0.2
    # dpo: β of the implicit reward β·(reference's error − model's error) on a pair (per image, errors averaged over
    # tokens and channels as Diffusion-DPO averages them); a larger β saturates each pair sooner, nearer the start.
    # 200 was measured on ShapesWorld: 2000 gained nothing, 50 drifted 4× as far
    dpo_beta: float = 200.0
    # dpo: preference pairs per prompt group: its j-th best image against its j-th worst for j < dpo_pairs (kept only
    # where the better one's image reward is higher), so K/2 pairs use every image once
    dpo_pairs: int = 1
    # judge_distill: the guidance distilled, as generate.judge_guidance takes it: the clean estimate moved by this
    # distance along the unit-RMS gradient of the judge's log-odds
    judge_strength: float = 0.1
    judge_until: float = 0.5  # judge_distill: guidance acts at flow times above this (as generate.judge_guidance_until)
    # draft: the sampler steps (the last ones) the gradient flows back through; null: every step, so the steps that
    # choose the layout are credited too (on ShapesWorld, where layout is what fails)
    draft_steps: int | None = None

    def __post_init__(self) -> None:
        if self.constraint == Constraint.kl and self.kl_weight <= 0:
            raise ConfigError(
                f"objective.kl_weight={self.kl_weight} with objective.constraint=kl: "
                "set objective.kl_weight > 0 or objective.constraint=none"
            )
        if self.kl_reference == KlReference.base and self.constraint != Constraint.kl:
            raise ConfigError(f"objective.kl_reference=base is read by objective.constraint=kl only; "
                              f"got objective.constraint={self.constraint.value}")
        if self.kl_reference == KlReference.base and self.kind.needs_start:
            raise ConfigError(f"objective.kl_reference=base with objective.kind={self.kind.value}: that objective "
                              "compares with the round's start, the one frozen copy a round holds; use "
                              "objective.kl_reference=start")
        if self.constraint == Constraint.anchor and self.anchor_weight <= 0:
            raise ConfigError(
                f"objective.anchor_weight={self.anchor_weight} with objective.constraint=anchor: "
                "set objective.anchor_weight > 0 or objective.constraint=none"
            )
        if not 0.0 <= self.text_dropout < 1.0:
            raise ConfigError(f"objective.text_dropout={self.text_dropout} must lie in [0, 1)")
        for key in ("anchor_weight", "kl_weight"):
            _check_positive(f"objective.{key}", getattr(self, key), allow_zero=True)
        _check_positive("objective.timestep_shift", self.timestep_shift)
        for key in ("adv_std_floor", "adv_clip", "nft_beta"):
            _check_positive(f"objective.{key}", getattr(self, key))
        if self.keep_top < 1:
            raise ConfigError(f"objective.keep_top={self.keep_top} must be >= 1 (images kept per prompt group)")
        _check_positive("objective.pg_clip", self.pg_clip)
        _check_positive("objective.dpo_beta", self.dpo_beta)
        _check_positive("objective.judge_strength", self.judge_strength)
        if not 0.0 <= self.judge_until < 1.0:
            raise ConfigError(f"objective.judge_until={self.judge_until} must lie in [0, 1)")
        if self.draft_steps is not None and self.draft_steps < 1:
            raise ConfigError(f"objective.draft_steps={self.draft_steps} must be >= 1 (or null: every sampler step)")
        if self.dpo_pairs < 1:
            raise ConfigError(f"objective.dpo_pairs={self.dpo_pairs} must be >= 1 (preference pairs per prompt group)")
        for key, reader in _READ_BY_ONE_KIND.items():
            value = getattr(self, key)
            if value != getattr(ObjectiveConfig, key) and self.kind != reader:  # set off its default
                shown = f"{value:g}" if isinstance(value, (int, float)) else value
                raise ConfigError(f"objective.{key}={shown} is read by objective.kind={reader.value} "
                                  f"only; got objective.kind={self.kind.value}")
        if self.kind in (ObjectiveKind.flow_grpo, ObjectiveKind.draft) and (self.constraint == Constraint.anchor
                                                                            or self.text_dropout > 0):
            raise ConfigError(
                f"objective.kind={self.kind.value} trains the sampling policy on its own steps: it has no flow target "
                "for objective.constraint=anchor and never drops the prompt; set objective.constraint=kl|none and "
                f"objective.text_dropout=0 (got {self.constraint.value}, {self.text_dropout})")
        if self.kind == ObjectiveKind.dpo and self.constraint == Constraint.anchor:
            raise ConfigError("objective.kind=dpo with objective.constraint=anchor would also imitate each pair's "
                              "worse image; set objective.constraint=none (the pair's reference term bounds it) or kl")


# objective settings that only one objective reads: set off their default under another, they are refused
_READ_BY_ONE_KIND = {"keep_top": ObjectiveKind.best_of, "pg_clip": ObjectiveKind.flow_grpo,
                     "dpo_beta": ObjectiveKind.dpo, "dpo_pairs": ObjectiveKind.dpo,
                     "judge_strength": ObjectiveKind.judge_distill, "judge_until": ObjectiveKind.judge_distill,
                     "draft_steps": ObjectiveKind.draft}


@dataclass
class TrainConfig:
    """Stage 5: optimisation under DeepSpeed (srum.md §3.5-3.6; official used FSDP, we use ZeRO)."""

    zero_stage: int = 2  # 2 | 3
    backend: DistBackend = DistBackend.auto  # process-group backend: auto | gloo | nccl
    dtype: str = "bfloat16"  # mixed-precision compute dtype: auto | float32 | bfloat16
    rounds: int = 1  # generate → judge → train rounds; official is a single round
    max_steps: int | None = 309  # optimiser steps per round; exactly one of max_steps / epochs is set
    epochs: float | None = None  # passes over the round's samples (instead of max_steps)
    # rounds whose samples a round trains on: its own and the replay_rounds − 1 before it (a replay buffer, so more
    # steps per sampled image do not mean more epochs of one round's images); each keeps its own round's weights
    replay_rounds: int = 1
    start_from: TrainStart = TrainStart.previous  # what a round's training starts from: previous | base
    micro_batch_size: int = 2  # images per rank per forward (official packs ~2 images of 1024² per GPU)
    grad_accum_steps: int = 1  # micro-batches per optimiser step
    lr: float = 2e-5  # peak learning rate (AdamW)
    warmup_steps: int = 100  # linear warm-up, then constant
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW betas
    eps: float = 1e-15  # AdamW epsilon (official 1e-15)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    grad_clip: float = 1.0  # global norm; 0 disables
    freeze_und: bool = False  # official trains both experts
    lora_rank: int = 0  # > 0: train LoRA adapters on the generation expert instead of its full weights
    lora_alpha: float = 16.0  # LoRA scale numerator: updates are scaled by lora_alpha / lora_rank
    # recompute decoder-layer activations in the backward pass: far less memory, ~1.3× the time
    activation_checkpointing: bool = True
    seed: int = 4396  # per-rank seed = seed * world_size + rank
    data_seed: int = 42  # seed of the per-epoch sample order
    # train on a fresh draw from each encoded image's autoencoder posterior at every step, as BAGEL's training
    # re-encodes every image it loads (needs generate.reencode=true or generate.source=world); false: the one drawn
    # at generate time, from the image's seed
    fresh_posterior: bool = False
    save_every: int = 100  # steps between resume checkpoints; 0 = only at the end of a round
    max_bad_steps: int = 3  # steps with a non-finite or exploding grad norm tolerated before the run stops
    # a grad norm above this × the median of recent good steps is a bad step (not with objective.kind=dpo, whose
    # saturating pairs make gradient norms span orders of magnitude by design: there only non-finite steps count)
    explode_factor: float = 100.0
    # DeepSpeed settings merged over the ones built from this section (e.g. {zero_optimization: {reduce_bucket_size:
    # 5e8}}, offload, communication tuning); batch sizes, optimizer and scheduler stay this section's.
    ds_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        owned = {"train_micro_batch_size_per_gpu": "train.micro_batch_size", "train_batch_size":
                 "train.micro_batch_size and train.grad_accum_steps", "gradient_accumulation_steps":
                 "train.grad_accum_steps", "optimizer": "train.lr/betas/eps/weight_decay", "scheduler":
                 "train.warmup_steps", "gradient_clipping": "train.grad_clip"}
        for key in self.ds_config:
            if key in owned:
                raise ConfigError(f"train.ds_config.{key}: set {owned[key]} instead (the loop's step counts and "
                                  "resume depend on them)")
        if self.ds_config.get("zero_optimization", {}).get("stage", self.zero_stage) != self.zero_stage:
            raise ConfigError("train.ds_config.zero_optimization.stage: set train.zero_stage instead")
        if self.zero_stage not in (2, 3):
            raise ConfigError(f"train.zero_stage={self.zero_stage}; expected 2 or 3")
        if self.dtype not in DTYPES:
            raise ConfigError(f"train.dtype={self.dtype!r}; expected one of {list(DTYPES)}")
        if (self.max_steps is None) == (self.epochs is None):
            raise ConfigError(
                f"train.max_steps={self.max_steps} and train.epochs={self.epochs}: set exactly one, "
                "e.g. train.max_steps=309 train.epochs=null"
            )
        if self.max_steps is not None:
            _check_positive("train.max_steps", self.max_steps)
        if self.epochs is not None:
            _check_positive("train.epochs", self.epochs)
        self.betas = _check_pair("train.betas", self.betas, 0.0, 1.0)
        for key in ("rounds", "replay_rounds", "micro_batch_size", "grad_accum_steps", "lr", "eps", "max_bad_steps",
                    "lora_alpha", "explode_factor"):
            _check_positive(f"train.{key}", getattr(self, key))
        for key in ("warmup_steps", "weight_decay", "grad_clip", "save_every", "lora_rank"):
            _check_positive(f"train.{key}", getattr(self, key), allow_zero=True)


@dataclass
class EvalConfig:
    """Stage 6: checkpoint → images → per-category scores (srum.md §4)."""

    prompts: str | None = None  # like generate.prompts (SRUM's val_comp.json, a folder, a world); None: no evaluation
    split: str = "val"  # for a prompt folder or a world: which split to read
    limit_per_category: int | None = None  # at most this many prompts per category (None: all)
    categories: list[str] = field(default_factory=list)  # empty = every category in the file
    # each round's export is evaluated once per variant: the first into roundN/eval, others into roundN/eval-<name>
    variants: list[EvalVariant] = field(default_factory=lambda: [EvalVariant.no_think])
    judge: str = "vlm"  # vlm | official | a prompt world's name (its exact judge, e.g. shapes)
    num_timesteps: int | None = None  # denoising grid points for evaluation; None = generate.num_timesteps
    base: bool = False  # also evaluate the starting model (round0/eval): the first point of the score curve
    judge_path: str | None = None  # local folder of the VLM judge (Qwen2.5-VL-72B/32B-Instruct)
    judge_max_new_tokens: int = 512  # vlm: answer length
    failure_score: str = "official"  # vlm: an unparseable answer scores -1, averaged in (official) | "exclude"
    seed: int = 42  # seed of the evaluation images (the same for every checkpoint evaluated)

    def __post_init__(self) -> None:
        if self.judge not in (*EVAL_JUDGES, *WORLDS):
            raise ConfigError(f"eval.judge={self.judge!r}; expected one of {[*EVAL_JUDGES, *sorted(WORLDS)]}")
        if self.prompts is not None and self.judge == "vlm" and self.judge_path is None:
            raise ConfigError(
                "eval.judge_path is required with eval.judge=vlm: pass eval.judge_path=/path/to/Qwen2.5-VL, "
                "choose another eval.judge, or eval.prompts=null to skip evaluation"
            )
        if not self.variants:
            raise ConfigError(f"eval.variants is empty; expected some of {[v.value for v in EvalVariant]}")
        if len(set(self.variants)) != len(self.variants):
            raise ConfigError(f"eval.variants={[v.value for v in self.variants]} names a variant twice")
        if self.failure_score not in ("official", "exclude"):
            raise ConfigError(f"eval.failure_score={self.failure_score!r}; expected 'official' or 'exclude'")
        _check_positive("eval.judge_max_new_tokens", self.judge_max_new_tokens)
        if self.limit_per_category is not None:
            _check_positive("eval.limit_per_category", self.limit_per_category)
        if self.num_timesteps is not None and self.num_timesteps < 2:
            raise ConfigError(f"eval.num_timesteps={self.num_timesteps} must be >= 2 (it counts grid points)")


@dataclass
class LogConfig:
    """Console, TensorBoard and progress-bar settings."""

    level: str = "INFO"  # console and file log level: DEBUG | INFO | WARNING | ERROR
    every: int = 10  # steps between train log lines
    tensorboard: bool = True  # write TensorBoard scalars under output.dir/tensorboard
    progress: bool = True  # tqdm on rank 0

    def __post_init__(self) -> None:
        if self.level.upper() not in LOG_LEVELS:
            raise ConfigError(f"log.level={self.level!r}; expected one of {list(LOG_LEVELS)}")
        _check_positive("log.every", self.every)


@dataclass
class OutputConfig:
    """Where a run writes: manifests, stage outputs, checkpoints and the final export."""

    dir: str = "runs/srum"  # the run folder: every stage's outputs, manifests, checkpoints and reports
    resume: bool = True  # continue the run found in `dir` (redo only unfinished work); false: refuse a used `dir`
    keep_checkpoints: int = 2  # resume checkpoints kept per round; the final export is always kept

    def __post_init__(self) -> None:
        if not self.dir:
            raise ConfigError("output.dir is empty: set it to the run folder")
        _check_positive("output.keep_checkpoints", self.keep_checkpoints)


@dataclass
class RunConfig:
    """One SRUM run: each stage receives only its own section."""

    model: ModelConfig = field(default_factory=ModelConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    regions: RegionsConfig = field(default_factory=RegionsConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        # Checked here, not in RegionsConfig, so that RegionsConfig() (proposer=sam, no path) stays a valid default.
        if self.regions.proposer == RegionProposer.sam and self.regions.sam_path is None:
            raise ConfigError(
                "regions.sam_path is required with regions.proposer=sam: "
                f"pass regions.sam_path={_REQUIRED_HINTS['regions.sam_path']} or regions.proposer=world "
                "(a prompt world's own)"
            )
        if self.train.backend == DistBackend.nccl and self.model.device == "cpu":
            raise ConfigError("train.backend=nccl needs CUDA but model.device=cpu: set train.backend=gloo or auto")
        # every other objective compares a prompt's images (judge_distill and draft read no reward)
        grouped = self.objective.kind not in (ObjectiveKind.official, ObjectiveKind.judge_distill, ObjectiveKind.draft)
        if grouped and self.generate.images_per_prompt < 2:
            raise ConfigError(
                f"objective.kind={self.objective.kind.value} compares the images of one prompt: set "
                f"generate.images_per_prompt >= 2 (e.g. 8), or objective.kind=official")
        if self.objective.optimality == Optimality.map and (self.objective.kind != ObjectiveKind.nft
                                                            or self.reward.map != RewardMapKind.signed):
            raise ConfigError(
                "objective.optimality=map reads the signed reward map as DiffusionNFT's optimality r = (M + 1)/2: set "
                f"objective.kind=nft and reward.map=signed (got {self.objective.kind.value}, {self.reward.map.value})")
        if not self.objective.nft_negative and self.objective.kind != ObjectiveKind.nft:
            raise ConfigError(f"objective.nft_negative=false switches off the negative half of objective.kind=nft; "
                              f"got objective.kind={self.objective.kind.value}")
        k = self.generate.images_per_prompt
        signed = (ObjectiveKind.group_relative, ObjectiveKind.nft)
        if self.objective.group_noise and (self.objective.kind not in signed or self.train.micro_batch_size % k):
            raise ConfigError(
                f"objective.group_noise=true needs objective.kind=group_relative|nft and train.micro_batch_size a "
                f"multiple of generate.images_per_prompt={k} (whole groups per micro-batch); got "
                f"objective.kind={self.objective.kind.value}, train.micro_batch_size={self.train.micro_batch_size}")
        if self.reward.hindsight and (self.objective.kind != ObjectiveKind.official
                                      or self.generate.source == GenerateSource.world):
            raise ConfigError(
                f"reward.hindsight relabels the model's own images, each to its own best prompt: set "
                f"objective.kind=official and generate.source=model (got {self.objective.kind.value}, "
                f"{self.generate.source.value}; a group objective compares the images of one asked prompt)")
        if grouped and self.reward.source == "uniform":
            raise ConfigError(
                f"objective.kind={self.objective.kind.value} with reward.source=uniform: equal rewards give zero "
                "advantages (best_of: no image above its group's lowest; dpo: no pair) and no update; use "
                "objective.kind=official for self-distillation")
        if self.objective.kind == ObjectiveKind.flow_grpo and (self.generate.sde_noise <= 0
                                                                or self.train.replay_rounds > 1):
            raise ConfigError(
                "objective.kind=flow_grpo needs the trajectories of SDE rollouts from the round's starting model (the "
                "policy its ratios compare with): set generate.sde_noise > 0 (e.g. 0.7) and train.replay_rounds=1 "
                f"(got {self.generate.sde_noise}, {self.train.replay_rounds})")
        if self.train.start_from == TrainStart.base and self.objective.kind.needs_start:
            raise ConfigError(f"train.start_from=base trains model.path, not the model that drew the round's samples, "
                              f"which objective.kind={self.objective.kind.value} compares with: use "
                              "train.start_from=previous")
        if self.objective.kind == ObjectiveKind.dpo and (2 * self.objective.dpo_pairs > k
                                                         or self.train.micro_batch_size % 2):
            raise ConfigError(
                f"objective.kind=dpo pairs distinct images of a group and trains whole pairs: set objective.dpo_pairs "
                f"<= generate.images_per_prompt/2 = {k // 2} and train.micro_batch_size even (got "
                f"{self.objective.dpo_pairs}, {self.train.micro_batch_size})")
        if self.objective.kind == ObjectiveKind.dpo and self.train.explode_factor != TrainConfig.explode_factor:
            raise ConfigError(f"train.explode_factor={self.train.explode_factor:g} is not read by objective.kind=dpo "
                              "(its pairs saturate, so gradient norms span orders of magnitude by design; only "
                              "non-finite steps count as bad): leave it unset")
        if self.train.fresh_posterior and not (self.generate.reencode or self.generate.source == GenerateSource.world):
            raise ConfigError("train.fresh_posterior=true draws from the posterior of each image's encoding: set "
                              "generate.reencode=true (or generate.source=world), or train.fresh_posterior=false")
        if self.train.fresh_posterior and self.objective.kind == ObjectiveKind.flow_grpo:
            raise ConfigError("train.fresh_posterior=true is not read by objective.kind=flow_grpo (it trains the "
                              "recorded SDE steps, not clean latents): set train.fresh_posterior=false")
        if self.objective.keep_top >= k and self.objective.kind == ObjectiveKind.best_of:
            raise ConfigError(f"objective.keep_top={self.objective.keep_top} keeps every one of the "
                              f"generate.images_per_prompt={k} images of a group: set it below {k}")
        needs_world = {"generate.source=world": self.generate.source == GenerateSource.world,  # its renders
                       "reward.source=oracle": "oracle" in self.reward.scorers,  # its exact judge
                       "regions.proposer=world": self.regions.proposer == RegionProposer.world}  # its proposer
        for setting, used in needs_world.items():
            if used and not is_world(self.generate.prompts):
                raise ConfigError(f"{setting} needs a prompt world; generate.prompts={self.generate.prompts!r} is "
                                  f"not one (use one of {sorted(WORLDS)}, or change {setting.split('=')[0]})")
        if self.generate.judge_guidance > 0 and self.judge.template_set == "official":
            raise ConfigError("generate.judge_guidance differentiates the judge's answer tokens, and "
                              "judge.templates=official asks for free text: set judge.mode=logits with "
                              "judge.templates=digits or a world's, or generate.judge_guidance=0")
        judging = (ObjectiveKind.judge_distill, ObjectiveKind.draft)
        if self.objective.kind in judging and (self.judge.template_set == "official" or self.train.zero_stage == 3):
            raise ConfigError(f"objective.kind={self.objective.kind.value} differentiates the judge's answer tokens "
                              "with the model whole on each rank: set judge.mode=logits with judge.templates=digits "
                              "or a world's, and train.zero_stage=2 (got judge.templates="
                              f"{self.judge.template_set}, train.zero_stage={self.train.zero_stage})")
        if self.objective.kind == ObjectiveKind.draft and not self.train.freeze_und:
            raise ConfigError("objective.kind=draft with train.freeze_und=false would train the judge to approve of "
                              "the pictures instead of the pictures to please it: set train.freeze_und=true")
        steps = self.generate.num_timesteps - 1
        if self.objective.kind == ObjectiveKind.draft and (self.objective.draft_steps or 0) > steps:
            raise ConfigError(f"objective.draft_steps={self.objective.draft_steps} exceeds the sampler's {steps} "
                              f"steps (generate.num_timesteps={self.generate.num_timesteps})")
        if self.reward.drop_zero_global and not self.judge.global_layout and self.reward.missing_global_score == 0:
            raise ConfigError(
                "reward.drop_zero_global=true with judge.global_layout=false drops every image (each gets "
                "reward.missing_global_score=0): set reward.drop_zero_global=false or judge.global_layout=true"
            )


def _schema(schema: type) -> DictConfig:
    # Builds each section's default instance (so their defaults must pass __post_init__), but not the root itself.
    return OmegaConf.structured(schema)


def _wrap(err: OmegaConfBaseException, source: str) -> ConfigError:
    """Turn an OmegaConf error into a ConfigError that names the full key, the expectation and where it came from."""
    key = getattr(err, "full_key", None) or "<root>"
    first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
    if isinstance(err, ConfigKeyError):
        return ConfigError(f"unknown key '{key}' (from {source}): {first_line}")
    if isinstance(err, MissingMandatoryValue):
        return ConfigError(_missing_message([key]))
    if isinstance(err, ValidationError):
        return ConfigError(f"bad value for '{key}' (from {source}): {first_line}")
    return ConfigError(f"config error at '{key}' (from {source}): {first_line}")


def _missing_message(keys: list[str]) -> str:
    parts = []
    for key in sorted(keys):
        hint = _REQUIRED_HINTS.get(key, "<value>")
        parts.append(f"{key} is required: set it in the recipe or pass {key}={hint}")
    return "; ".join(parts)


def _load_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise FileNotFoundError(f"recipe file not found: {str(path)!r}")
    try:
        loaded = OmegaConf.load(path)
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {str(path)!r} is not valid YAML: {e}") from e
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"recipe {str(path)!r} must be a mapping of sections (model:, train:, ...), got a list")
    return loaded


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), schema: type = RunConfig) -> Any:
    """Recipe YAML (or None for pure defaults) merged onto the schema, then `key=value` overrides, validated.

    `schema` is the root dataclass: `RunConfig` for SRUM runs, other roots (e.g. pretraining) reuse the checks.

    Every recipe value and every override is merged on its own, so each error names the key and where it came from,
    and all of them are reported together (one line each), as are the sections' own checks; checks across sections
    run once every section is valid. Raises ConfigError, or FileNotFoundError for a missing recipe.
    """
    cfg = _schema(schema)
    problems: list[str] = []
    if path is not None:
        path = Path(path)
        recipe = _load_yaml(path)
        try:
            cfg = OmegaConf.merge(cfg, recipe)
        except OmegaConfBaseException:  # find every bad value, not only the first: merge them one by one
            for key, value in _leaves(OmegaConf.to_container(recipe)):
                try:
                    cfg = OmegaConf.merge(cfg, _nested(key, value))
                except OmegaConfBaseException as e:
                    problems.append(str(_wrap(e, f"recipe {str(path)!r}")))
    for item in overrides:
        if "=" not in item:
            problems.append(f"override {item!r} is not key=value (e.g. train.lr=1e-5)")
            continue
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as e:
            problems.append(str(_wrap(e, f"override {item!r}")))
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        problems.append(_missing_message(missing))
    sections = [name for name, kind in typing.get_type_hints(schema).items() if dataclasses.is_dataclass(kind)]
    for section in sections:  # each section's own checks, all of them; missing values are reported above
        if not any(m.startswith(f"{section}.") for m in missing):
            problems += _build_problems(cfg[section])
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else
                          f"{len(problems)} problems in the config:\n  " + "\n  ".join(problems))
    run = _build(cfg)
    if not isinstance(run, schema):
        raise ConfigError(f"the recipe did not build a {schema.__name__}")
    return run


def _leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A recipe's values by dotted key: nested mappings are walked; lists and empty mappings are values."""
    if isinstance(tree, dict) and (tree or not prefix):
        return [leaf for k, v in tree.items() for leaf in _leaves(v, f"{prefix}{k}.")]
    return [(prefix[:-1], tree)]


def _nested(key: str, value: Any) -> DictConfig:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return OmegaConf.create(out)


def _build(cfg: DictConfig) -> Any:
    try:
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise _wrap(e, "the merged config") from e
    except ConfigError:
        raise
    except ValueError as e:  # a __post_init__ outside our own checks
        raise ConfigError(str(e)) from e


def _build_problems(section: DictConfig) -> list[str]:
    try:
        _build(section)
    except ConfigError as e:
        return [str(e)]
    return []


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """Plain, resolved dict (enums as their values, tuples as lists): what manifests and checkpoints record."""
    # Every Enum here has name == value, so enum_to_str's names load back unchanged.
    container = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)
    # The JSON round trip turns tuples into lists, so the dict equals what a saved YAML or JSON loads back as.
    return json.loads(json.dumps(container))


def save_config(cfg: RunConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically, so `load_config(path)` rebuilds an equal RunConfig."""
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)
    return atomic_write_text(path, text)


def check_paths(cfg: RunConfig) -> None:
    """Raise FileNotFoundError naming the key and path of the first input that does not exist (and ConfigError for
    eval.categories its prompt source lacks: known only once the prompts are read)."""
    checks: list[tuple[str, str | None]] = [
        ("model.path", cfg.model.path),
        ("generate.prompts", cfg.generate.prompts),
        ("generate.reuse_from", cfg.generate.reuse_from),
        ("regions.sam_path", cfg.regions.sam_path if cfg.regions.proposer == RegionProposer.sam else None),
        ("eval.prompts", cfg.eval.prompts),
        ("eval.judge_path", cfg.eval.judge_path if cfg.eval.prompts is not None else None),
    ]
    for key, value in checks:
        if value is not None and not is_world(value) and not Path(value).exists():  # a world makes its prompts
            raise FileNotFoundError(f"{key}={value!r} does not exist: point {key} at an existing path")
    from srum.models.registry import check_model_folder

    try:
        check_model_folder(cfg.model)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"model.path={cfg.model.path!r}: {e}") from None
    if cfg.reward.oracle_ignore:  # the world knows its attributes: known only once it is imported
        try:
            world_for(cfg.generate.prompts).oracle_scorer(list(cfg.reward.oracle_ignore))
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if cfg.reward.hindsight:  # the world knows its attributes: known only once it is imported
        world = world_for(cfg.generate.prompts)
        if world is None or not hasattr(world, "prompt_variants"):
            raise ConfigError(f"reward.hindsight needs a prompt world that can vary its prompts; "
                              f"generate.prompts={cfg.generate.prompts!r} cannot")
        if cfg.reward.hindsight_balance is not None and not hasattr(world, "attribute_values"):
            raise ConfigError(f"reward.hindsight_balance needs a prompt world that lists its prompts' attribute "
                              f"values; generate.prompts={cfg.generate.prompts!r} cannot")
        try:
            world.prompt_variants(world.prompts(cfg.generate.split, 1)[0].prompt, list(cfg.reward.hindsight))
        except ValueError as e:
            raise ConfigError(f"reward.hindsight: {e}") from None
    if cfg.eval.prompts is not None and cfg.eval.categories:
        from srum.evaluation.benchmarks import load_prompt_source

        present = {it.category for it in load_prompt_source(cfg.eval.prompts, cfg.eval.split)}
        unknown = sorted(set(cfg.eval.categories) - present)
        if unknown:
            raise ConfigError(f"eval.categories={list(cfg.eval.categories)}: {unknown} not among the categories of "
                              f"eval.prompts={cfg.eval.prompts!r} ({sorted(present)})")
