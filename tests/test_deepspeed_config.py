"""The DeepSpeed json built from the train section, and the user's `train.ds_config` overlay merged over it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from srum.config import ConfigError, load_config
from srum.engine import deepspeed_config

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "shapes.yaml"


def test_overlay_merges_nested_keys_and_keeps_the_sections_own():
    cfg = load_config(RECIPE, ["model.path=x", "train.micro_batch_size=3", "train.grad_accum_steps=2",
                               "train.ds_config.zero_optimization.reduce_bucket_size=1000",
                               "train.ds_config.communication_data_type=fp32"])
    ds = deepspeed_config(cfg.train, world_size=2, dtype=torch.float32)
    assert ds["zero_optimization"] == {"stage": 2, "overlap_comm": False, "contiguous_gradients": True,
                                       "reduce_bucket_size": 1000}
    assert ds["communication_data_type"] == "fp32"
    assert ds["train_batch_size"] == 3 * 2 * 2 and ds["optimizer"]["params"]["lr"] == cfg.train.lr
    assert deepspeed_config(load_config(RECIPE, ["model.path=x"]).train, 2, torch.float32)["zero_optimization"] == \
        {"stage": 2, "overlap_comm": False, "contiguous_gradients": True}  # no overlay: unchanged


@pytest.mark.parametrize("key, owner", [("train_batch_size", "train.micro_batch_size"),
                                        ("optimizer.type", "train.lr"),
                                        ("zero_optimization.stage", "train.zero_stage")])
def test_overlay_cannot_take_what_the_loop_depends_on(key, owner):
    with pytest.raises(ConfigError, match=f"train.ds_config.{key.split('.')[0]}.*{owner}"):
        load_config(RECIPE, ["model.path=x", f"train.ds_config.{key}=3"])
