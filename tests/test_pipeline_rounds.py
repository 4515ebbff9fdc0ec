"""Online rounds: each round's prompt window, from the pipeline's pure helper."""

from srum.evaluation.benchmarks import PromptItem
from srum.pipeline import round_items

ITEMS = [PromptItem(c, i, f"{c}{i}") for c in ("a", "b") for i in range(5)]


def test_round_one_keeps_the_first_prompts_and_later_rounds_move_on_wrapping():
    assert [it.prompt for it in round_items(ITEMS, 2, 1)] == ["a0", "a1", "b0", "b1"]
    assert [it.prompt for it in round_items(ITEMS, 2, 2)] == ["a2", "a3", "b2", "b3"]
    assert [it.prompt for it in round_items(ITEMS, 2, 3)] == ["a4", "a0", "b4", "b0"]  # wraps within its category


def test_no_limit_means_every_prompt_every_round_and_limits_cap_at_the_category():
    assert round_items(ITEMS, None, 3) == ITEMS
    assert [it.prompt for it in round_items(ITEMS, 9, 2)] == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]


def test_sampler_settings_go_to_the_backend_by_name_and_the_plan_names_each_stage():
    from pathlib import Path

    from srum.config import load_config
    from srum.models.bagel.sampling import GuidanceParams
    from srum.pipeline import plan, sampling_from

    cfg = load_config(Path(__file__).resolve().parents[1] / "recipes" / "shapes.yaml",
                      ["model.path=unused", "generate.cfg_text_scale=2.5", "eval.num_timesteps=7"])
    settings = sampling_from(cfg, num_timesteps=cfg.eval.num_timesteps)
    assert settings["cfg_text_scale"] == 2.5 and settings["num_timesteps"] == 7
    GuidanceParams(**{**settings, "cfg_interval": tuple(settings["cfg_interval"])})  # every name is the backend's
    text = plan(cfg, world_size=2)
    for piece in ("ZeRO-2 on 2 rank(s)", "regions: world", "reward: source self", "objective: official",
                  "boxes end exclusive"):
        assert piece in text, piece
