"""Every recipe key is validated: a wrong-typed value for each field, and an out-of-range value for each field with a
range or a fixed set of choices, fails at load with an error naming the key; several problems are reported together.
Every field has a help string (`launch/srum.py --help-config`)."""

from __future__ import annotations

import subprocess
import sys
import typing
from enum import Enum
from pathlib import Path

import pytest

from srum.config import ConfigError, check_paths, load_config
from srum.config_help import field_help, schema_fields

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "shapes.yaml"
BASE = ["model.path=unused"]

# Out-of-range or not-a-choice values (the values the type allows but the run must refuse).
BAD_VALUES = {
    "model.backend": "flux", "model.dtype": "float16", "model.device": "tpu",
    "generate.max_think_tokens": "0", "generate.images_per_prompt": "0", "generate.resolution": "100",
    "generate.num_timesteps": "1", "generate.timestep_shift": "0", "generate.cfg_text_scale": "-1",
    "generate.cfg_img_scale": "-1", "generate.cfg_interval": "[0.5,2.0]", "generate.cfg_renorm_type": "box",
    "generate.cfg_renorm_min": "2", "generate.batch_size": "0", "generate.limit_per_category": "-3",
    "regions.points_per_side": "0", "regions.points_per_batch": "0", "regions.pred_iou_thresh": "1.5",
    "regions.stability_score_thresh": "-0.1", "regions.box_nms_thresh": "2", "regions.max_regions": "0",
    "regions.min_area_frac": "1", "regions.box_end": "last",
    "judge.max_regional_tokens": "0", "judge.max_global_tokens": "0", "judge.max_retries": "-1",
    "judge.retry_temperature": "-1", "judge.batch_size": "0", "judge.templates": "haiku", "judge.region_margin": "-1",
    "reward.source": "hps", "reward.mix": "{uniform: 1}",
    "objective.anchor_weight": "-1", "objective.kl_weight": "-1", "objective.timestep_shift": "0",
    "objective.text_dropout": "1.5", "objective.adv_std_floor": "0", "objective.adv_clip": "0",
    "objective.nft_beta": "0", "objective.group_noise": "true",  # the recipe's objective is official
    "objective.optimality": "map", "objective.nft_negative": "false", "objective.keep_top": "0",
    "objective.pg_clip": "0", "generate.sde_noise": "-0.5",
    "generate.judge_guidance": "-0.1", "generate.judge_guidance_until": "1.0", "objective.dpo_beta": "0", "objective.dpo_pairs": "0",
    "objective.judge_strength": "0", "objective.judge_until": "1.0", "objective.draft_steps": "0",
    "train.zero_stage": "1", "train.dtype": "float16", "train.rounds": "0", "train.replay_rounds": "0",
    "train.max_steps": "0", "train.epochs": "0", "train.micro_batch_size": "0", "train.grad_accum_steps": "0",
    "train.lr": "0",
    "train.warmup_steps": "-1", "train.betas": "[0.9,1.5]", "train.eps": "0", "train.weight_decay": "-1",
    "train.grad_clip": "-1", "train.lora_rank": "-1", "train.lora_alpha": "0", "train.save_every": "-1",
    "train.max_bad_steps": "0", "train.explode_factor": "0", "train.ds_config": "{train_batch_size: 8}",
    "eval.limit_per_category": "0", "eval.variants": "[]", "eval.judge": "clip", "eval.num_timesteps": "1",
    "eval.judge_max_new_tokens": "0", "eval.failure_score": "zero",
    "log.level": "LOUD", "log.every": "0", "output.keep_checkpoints": "0",
    "reward.oracle_ignore": "[shape]",  # with the recipe's self reward; unknown attributes: test below
    "reward.min_global": "1.5",
    "reward.hindsight_balance": "0.5",  # also refused without reward.hindsight: test below
    "objective.kl_reference": "base",  # the recipe's constraint is the anchor
}
# Fields any value of their type suits (paths, names, seeds, switches, free numbers): only their type is checked.
FREE = {
    "model.path", "generate.prompts", "generate.split", "generate.reuse_from", "generate.seed", "generate.think",
    "generate.source", "generate.reencode", "train.fresh_posterior", "regions.proposer", "regions.sam_path", "regions.stability_score_offset", "judge.mode",
    "judge.think", "judge.global_layout", "judge.sample_level_only", "judge.clamp_scores", "reward.map",
    "reward.binarize", "reward.drop_zero_global", "reward.missing_global_score", "reward.use_masks",
    "reward.use_regions", "objective.kind", "objective.constraint", "objective.guided", "train.backend",
    "train.freeze_und", "train.start_from",
    "train.activation_checkpointing", "train.seed", "train.data_seed", "eval.prompts", "eval.split", "eval.base",
    "eval.judge_path", "eval.seed", "log.tensorboard", "log.progress", "output.dir", "output.resume",
    "eval.categories",  # checked against the prompt source at start (check_paths): test below
    "reward.hindsight",  # checked against the world's attributes at start: test below
}
FIELDS = {key: kind for key, kind, _, _ in schema_fields()}


def _wrong_type(kind) -> str | None:
    """A value the field's type cannot take; None for plain strings (any text is a string)."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    base = typing.get_origin(kind) or kind
    if base in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return _wrong_type(args[0])
    if base in (int, float, bool) or (isinstance(base, type) and issubclass(base, Enum)):
        return "not_a_value"
    if base in (list, tuple, dict):
        return "not_a_value"
    return None


def test_every_field_is_classified():
    assert set(BAD_VALUES) | FREE == set(FIELDS), "classify new config fields here (a bad value, or FREE)"
    assert not set(BAD_VALUES) & FREE


@pytest.mark.parametrize("key", sorted(k for k in FIELDS if _wrong_type(FIELDS[k]) is not None))
def test_wrong_type_names_the_key(key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(RECIPE, [*BASE, f"{key}={_wrong_type(FIELDS[key])}"])


@pytest.mark.parametrize("key", sorted(BAD_VALUES))
def test_bad_value_names_the_key(key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(RECIPE, [*BASE, f"{key}={BAD_VALUES[key]}"])


def test_problems_are_reported_together():
    with pytest.raises(ConfigError) as e:
        load_config(RECIPE, [*BASE, "regions.max_regions=abc", "bogus.key=1", "judge.batch_size=0",
                             "train.zero_stage=5", "eval.failure_score=zero"])
    lines = str(e.value).splitlines()
    assert lines[0] == "5 problems in the config:"
    for key in ("regions.max_regions", "bogus", "judge.batch_size", "train.zero_stage", "eval.failure_score"):
        assert sum(key in line for line in lines[1:]) == 1, key


def test_every_field_has_help_and_the_cli_prints_it():
    helps = field_help()
    assert set(helps) == set(FIELDS) and all(helps.values()), [k for k, v in helps.items() if not v]
    out = subprocess.run([sys.executable, str(ROOT / "launch" / "srum.py"), "--help-config"], capture_output=True,
                         text=True, check=True).stdout
    assert all(f"\n{key} (" in "\n" + out for key in FIELDS)
    assert "train.ds_config (dict[str, typing.Any], default {})" in out or "train.ds_config (" in out


def test_eval_categories_are_checked_against_the_prompts_at_start():
    cfg = load_config(RECIPE, ["model.path=" + str(ROOT / "checkpoints" / "shapes-tiny"), "eval.categories=[colour]"])
    with pytest.raises(ConfigError, match=r"eval.categories=\['colour'\]: \['colour'\] not among"):
        check_paths(cfg)
    check_paths(load_config(RECIPE, ["model.path=" + str(ROOT / "checkpoints" / "shapes-tiny"),
                                     "eval.categories=[color,spatial]"]))


def test_oracle_ignore_is_checked_against_the_worlds_attributes_at_start():
    base = ["model.path=" + str(ROOT / "checkpoints" / "shapes-tiny"), "reward.source=oracle"]
    with pytest.raises(ConfigError, match=r"reward.oracle_ignore: \['colour'\] are not attributes the ShapesWorld"):
        check_paths(load_config(RECIPE, [*base, "reward.oracle_ignore=[colour]"]))
    check_paths(load_config(RECIPE, [*base, "reward.oracle_ignore=[shape,size]"]))


def test_hindsight_is_checked_against_the_worlds_attributes_and_the_objective():
    base = ["model.path=" + str(ROOT / "checkpoints" / "shapes-tiny")]
    with pytest.raises(ConfigError, match=r"reward.hindsight: \['colour'\] are not attributes a ShapesWorld prompt"):
        check_paths(load_config(RECIPE, [*base, "reward.hindsight=[colour]"]))
    check_paths(load_config(RECIPE, [*base, "reward.hindsight=[shape,relation]"]))
    with pytest.raises(ConfigError, match=r"reward.hindsight relabels .* objective.kind=official"):
        load_config(RECIPE, [*base, "reward.hindsight=[shape]", "objective.kind=nft", "objective.constraint=none",
                             "generate.images_per_prompt=4"])
    with pytest.raises(ConfigError, match=r"reward.hindsight=\['shape'\] chooses labels by their reward"):
        load_config(RECIPE, [*base, "reward.hindsight=[shape]", "reward.source=uniform"])
    with pytest.raises(ConfigError, match=r"reward.hindsight_balance=3.0 re-weights hindsight's labels"):
        load_config(RECIPE, [*base, "reward.hindsight_balance=3.0"])
    check_paths(load_config(RECIPE, [*base, "reward.hindsight=[shape]", "reward.hindsight_balance=3.0"]))


def test_every_bad_value_of_a_recipe_file_is_reported(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("generate:\n  prompts: shapes\n  resolution: 64\nlog:\n  every: often\n  colour: blue\n")
    with pytest.raises(ConfigError) as e:
        load_config(recipe, BASE)
    text = str(e.value)
    assert text.startswith("2 problems in the config:") and "log.every" in text and "log.colour" in text
