"""RunConfig loading: recipes, overrides, and errors that name the key (srum/config.py)."""

import re
from pathlib import Path

import pytest

from srum.config import (
    BACKENDS,
    ConfigError,
    Constraint,
    DistBackend,
    JudgeMode,
    KlReference,
    ObjectiveConfig,
    RegionProposer,
    RunConfig,
    TrainStart,
    check_paths,
    config_to_dict,
    load_config,
    save_config,
)

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "bagel.yaml"
# The recipe leaves these to the command line; any string will do until check_paths runs.
REQUIRED = ["model.path=/weights/BAGEL-7B-MoT", "regions.sam_path=/weights/sam-vit-huge", "eval.judge_path=/weights/qwen"]


def load(*overrides: str) -> RunConfig:
    return load_config(RECIPE, [*REQUIRED, *overrides])


def test_bagel_recipe_loads_official_values():
    cfg = load()
    assert isinstance(cfg, RunConfig)
    assert cfg.model.path == "/weights/BAGEL-7B-MoT"
    assert cfg.model.dtype == "bfloat16"
    assert cfg.generate.num_timesteps == 50
    assert cfg.generate.timestep_shift == 3.0
    assert cfg.generate.cfg_interval == (0.4, 1.0)
    assert cfg.regions.proposer is RegionProposer.sam
    assert cfg.regions.max_regions == 10
    assert cfg.judge.mode is JudgeMode.text
    assert cfg.judge.max_retries == 5
    assert cfg.objective.constraint is Constraint.anchor
    assert cfg.objective.anchor_weight == 0.5
    assert cfg.train.zero_stage == 3
    assert cfg.train.backend is DistBackend.nccl
    assert cfg.train.lr == pytest.approx(2e-5)
    assert cfg.train.eps == pytest.approx(1e-15)
    assert cfg.train.betas == (0.9, 0.95)
    assert cfg.train.max_steps == 309 and cfg.train.epochs is None


def test_override_changes_value_and_converts_type():
    cfg = load("train.lr=1e-4", "train.zero_stage=2", "judge.mode=logits", "train.betas=[0.8,0.99]")
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.train.zero_stage == 2
    assert cfg.judge.mode is JudgeMode.logits
    assert cfg.train.betas == (0.8, 0.99)  # a list on the command line becomes the tuple field
    assert load().train.lr == pytest.approx(2e-5)  # the recipe itself is untouched


def test_defaults_only_without_recipe():
    cfg = load_config(None, ["model.path=/m", "generate.prompts=shapes", "regions.proposer=world"])
    assert cfg.model.backend == "bagel"
    assert cfg.model.dtype == "auto" and cfg.model.device == "auto"
    assert [v.value for v in cfg.eval.variants] == ["no_think"] and cfg.eval.split == "val"
    assert cfg.train.zero_stage == 2


def test_unknown_key_names_full_key():
    with pytest.raises(ConfigError) as e:
        load("judge.moed=logits")
    msg = str(e.value)
    assert "unknown key 'judge.moed'" in msg
    assert "override 'judge.moed=logits'" in msg


def test_unknown_key_in_recipe_names_file(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  learning_rate: 1.0\n")
    with pytest.raises(ConfigError) as e:
        load_config(recipe, ["model.path=/m"])
    assert "unknown key 'train.learning_rate'" in str(e.value)
    assert str(recipe) in str(e.value)


def test_unknown_section_fails():
    with pytest.raises(ConfigError, match="unknown key 'trian'"):
        load("trian.lr=1")


def test_wrong_type_names_key_and_expected_type():
    with pytest.raises(ConfigError) as e:
        load("train.lr=fast")
    msg = str(e.value)
    assert "'train.lr'" in msg
    assert "'fast'" in msg and "Float" in msg


def test_bad_enum_lists_valid_values():
    with pytest.raises(ConfigError) as e:
        load("objective.constraint=kld")
    msg = str(e.value)
    assert "'objective.constraint'" in msg and "'kld'" in msg
    for valid in ("kl", "anchor", "none"):
        assert valid in msg


def test_unknown_backend_lists_registry():
    with pytest.raises(ConfigError) as e:
        load("model.backend=janus2")
    msg = str(e.value)
    assert "model.backend='janus2'" in msg
    assert str(list(BACKENDS)) in msg


def test_missing_model_path_names_key_and_fix():
    with pytest.raises(ConfigError) as e:
        load_config(RECIPE, REQUIRED[1:])
    assert str(e.value) == (
        "model.path is required: set it in the recipe or pass model.path=/path/to/BAGEL-7B-MoT"
    )


def test_all_missing_keys_reported_at_once():
    with pytest.raises(ConfigError) as e:
        load_config(None, [])
    msg = str(e.value)
    assert "model.path is required" in msg and "generate.prompts is required" in msg


def test_sam_proposer_needs_sam_path():
    with pytest.raises(ConfigError) as e:
        load_config(RECIPE, [REQUIRED[0], REQUIRED[2]])
    msg = str(e.value)
    assert "regions.sam_path is required with regions.proposer=sam" in msg
    assert "regions.proposer=world" in msg
    assert load_config(RECIPE, [REQUIRED[0], REQUIRED[2], "regions.proposer=world",
                                "generate.prompts=shapes"]).regions.sam_path is None
    with pytest.raises(ConfigError, match="regions.proposer=world needs a prompt world"):
        load_config(RECIPE, [REQUIRED[0], REQUIRED[2], "regions.proposer=world"])  # the recipe's prompts: a file


def test_missing_recipe_file_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(FileNotFoundError) as e:
        load_config(missing, [])
    assert str(missing) in str(e.value)


def test_malformed_yaml_names_file(tmp_path):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("train:\n  lr: [1e-5\n  zero_stage: 2\n")
    with pytest.raises(ConfigError) as e:
        load_config(recipe, [])
    assert str(recipe) in str(e.value) and "not valid YAML" in str(e.value)


def test_recipe_must_be_a_mapping(tmp_path):
    recipe = tmp_path / "list.yaml"
    recipe.write_text("- model\n- train\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(recipe, [])


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match=r"override 'train\.lr' is not key=value"):
        load("train.lr")


def test_post_init_kl_needs_weight():
    with pytest.raises(ConfigError) as e:
        load("objective.constraint=kl")
    msg = str(e.value)
    assert "objective.kl_weight=0.0 with objective.constraint=kl" in msg
    assert "set objective.kl_weight > 0 or objective.constraint=none" in msg
    assert load("objective.constraint=kl", "objective.kl_weight=0.1").objective.kl_weight == 0.1
    # The same check guards direct construction, not only loading.
    with pytest.raises(ConfigError, match="kl_weight"):
        ObjectiveConfig(constraint=Constraint.kl)


def test_kl_reference_base_only_where_the_kl_term_reads_it():
    kl = ("objective.constraint=kl", "objective.kl_weight=1.0")
    assert load(*kl).objective.kl_reference == KlReference.start  # each round's start, as before the switch
    assert load(*kl, "objective.kl_reference=base").objective.kl_reference == KlReference.base
    with pytest.raises(ConfigError, match="objective.kl_reference=base is read by objective.constraint=kl only; "
                                          "got objective.constraint=anchor"):
        load("objective.kl_reference=base")
    with pytest.raises(ConfigError, match="objective.kl_reference=base with objective.kind=nft"):
        load(*kl, "objective.kind=nft", "objective.kl_reference=base")


def test_start_from_base_only_where_no_objective_compares_with_the_drawing_model():
    assert load().train.start_from == TrainStart.previous  # the rounds compound, as before the switch
    assert load("train.start_from=base").train.start_from == TrainStart.base
    for kind in ("nft", "dpo"):
        with pytest.raises(ConfigError, match=f"train.start_from=base trains model.path, not the model that drew the "
                                              f"round's samples, which objective.kind={kind} compares with"):
            load("train.start_from=base", f"objective.kind={kind}", "objective.constraint=none",
                 "generate.images_per_prompt=8")


def test_post_init_range_and_exclusive_choices():
    with pytest.raises(ConfigError, match=r"train\.zero_stage=1; expected 2 or 3"):
        load("train.zero_stage=1")
    with pytest.raises(ConfigError, match="set exactly one"):
        load("train.epochs=1.0")  # max_steps is still 309
    assert load("train.epochs=1.0", "train.max_steps=null").train.epochs == 1.0
    with pytest.raises(ConfigError, match=r"generate\.cfg_interval=\[0\.9, 0\.2\]: lo must be < hi"):
        load("generate.cfg_interval=[0.9,0.2]")
    with pytest.raises(ConfigError, match=r"generate\.resolution=1000 must be a positive multiple of 16"):
        load("generate.resolution=1000")


def test_cross_section_check():
    with pytest.raises(ConfigError, match="train.backend=nccl needs CUDA but model.device=cpu"):
        load("model.device=cpu")
    assert load("model.device=cpu", "train.backend=gloo").train.backend is DistBackend.gloo


def test_save_load_roundtrip(tmp_path):
    cfg = load("train.lr=3e-6", "judge.mode=logits", "eval.variants=[no_think]", "generate.cfg_renorm_type=channel")
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert path.is_file()
    again = load_config(path, [])
    assert again == cfg
    assert config_to_dict(again) == config_to_dict(cfg)
    text = path.read_text()
    assert "mode: logits" in text and "backend: nccl" in text  # enums saved by value, readable


def test_config_to_dict_is_plain():
    d = config_to_dict(load())
    assert list(d) == ["model", "generate", "regions", "judge", "reward", "objective", "train", "eval", "log", "output"]
    assert d["judge"]["mode"] == "text" and d["train"]["betas"] == [0.9, 0.95]
    assert d["eval"]["variants"] == ["think", "no_think"]


def test_check_paths_names_key_and_path(tmp_path):
    cfg = load(f"generate.prompts={tmp_path}", "eval.prompts=null")
    with pytest.raises(FileNotFoundError) as e:
        check_paths(cfg)
    assert "model.path='/weights/BAGEL-7B-MoT' does not exist" in str(e.value)
    sam = tmp_path / "sam"
    sam.mkdir()
    cfg = load(f"model.path={tmp_path}", f"generate.prompts={tmp_path}", f"regions.sam_path={sam}", "eval.prompts=null")
    with pytest.raises(FileNotFoundError, match="has neither llm_config.json .* nor config.json"):
        check_paths(cfg)  # a folder that exists but holds no model
    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "shapes-tiny"
    cfg = load(f"model.path={shipped}", f"generate.prompts={tmp_path}", f"regions.sam_path={sam}", "eval.prompts=null")
    check_paths(cfg)  # everything exists; eval.judge_path is not needed with evaluation off
    (tmp_path / "config.json").write_text("{}")
    cfg = load(f"model.path={tmp_path}", f"generate.prompts={tmp_path}", f"regions.sam_path={sam}", "eval.prompts=null")
    with pytest.raises(FileNotFoundError, match="model.safetensors not found"):
        check_paths(cfg)


# ---- reward sources, objectives, online rounds --------------------------------------------------------------------

SHAPES_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "shapes.yaml"


@pytest.mark.parametrize("overrides, key", [
    (["objective.kind=nft", "generate.images_per_prompt=1"], "generate.images_per_prompt"),
    (["objective.kind=group_relative", "generate.images_per_prompt=4", "reward.source=uniform"], "reward.source=uniform"),
    (["reward.source=oracle", "generate.prompts=/tmp"], "reward.source=oracle"),
    (["generate.source=world", "generate.prompts=/tmp"], "generate.source=world"),
    (["objective.adv_clip=0"], "objective.adv_clip"),
    (["objective.adv_std_floor=-1"], "objective.adv_std_floor"),
    (["eval.num_timesteps=1"], "eval.num_timesteps"),
    (["judge.batch_size=0"], "judge.batch_size"),
    (["generate.limit_per_category=-3"], "generate.limit_per_category"),
    (["eval.limit_per_category=0"], "eval.limit_per_category"),
    (["reward.source=bogus"], "reward.source"),
])
def test_new_switches_reject_bad_values(overrides, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(SHAPES_RECIPE, overrides)


def test_online_recipe_loads():
    cfg = load_config(Path(__file__).resolve().parents[1] / "recipes" / "shapes_online.yaml")
    assert cfg.objective.kind.value == "nft" and cfg.generate.images_per_prompt == 8 and cfg.eval.base


def test_bagel_recipes_official_default_and_online_variant():
    assert load().objective.kind.value == "official"  # the paper's pipeline stays the default at BAGEL scale
    online = load_config(RECIPE.with_name("bagel_online.yaml"), REQUIRED)
    assert online.objective.kind.value == "nft" and online.generate.images_per_prompt == 8
    assert online.eval.num_timesteps == 50 and online.generate.num_timesteps < 50  # cheaper rollouts only
    assert online.train.freeze_und  # the judge must not drift with the generator it judges
