"""Ablation runner: variant expansion and the table layout, on hand-made scores."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import pytest

from PIL import Image

from srum.ablation import (VARIANTS, Evaluated, expand, interval_chart, load_evaluated, table_rows,
                          write_tables)
from srum.cli.ablate import _ints, _seeds, main, parse_args, runnable
from srum.config import load_config
from srum.utils.artifacts import DamagedArtifact
from srum.utils.dist import free_port

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "shapes.yaml"


def test_expand_gives_valid_configs_and_own_folders(tmp_path):
    runs = expand(list(VARIANTS), tmp_path, ["train.max_steps=3"])
    assert [r.name for r in runs] == list(VARIANTS)
    for run in runs:
        cfg = load_config(RECIPE, list(run.overrides))  # every variant is a valid config of the base recipe
        assert cfg.output.dir == str(tmp_path / run.name) and cfg.train.max_steps == 3
    by_name = {r.name: load_config(RECIPE, list(r.overrides)) for r in runs}
    assert by_name["global_only"].reward.use_regions is False
    assert by_name["local_only"].judge.global_layout is False
    assert by_name["constraint_kl"].objective.constraint.value == "kl"
    assert by_name["self_distill"].reward.source == "uniform"
    assert by_name["both_experts"].train.freeze_und is False and by_name["srum"].train.freeze_und is True
    assert by_name["oracle"].reward.source == "oracle"
    with pytest.raises(ValueError, match="unknown ablation variant"):
        expand(["nope"], tmp_path)


def test_reseeds_run_every_variant_again_in_its_own_folder(tmp_path):
    runs = expand(["srum", "oracle"], tmp_path, ["train.seed=1"], [(1234, 7), (5, 6)])
    assert [(r.name, r.out_dir.name) for r in runs] == [
        ("srum", "srum"), ("srum", "srum-seed1234"), ("srum", "srum-seed5"),
        ("oracle", "oracle"), ("oracle", "oracle-seed1234"), ("oracle", "oracle-seed5")]
    seeds = [(c.train.seed, c.train.data_seed, c.reward.source) for c in
             (load_config(RECIPE, list(r.overrides)) for r in runs)]
    # The plain folder keeps the recipe's (here overridden) seeds; a reseed wins over the extra overrides.
    assert seeds == [(1, 42, "self"), (1234, 7, "self"), (5, 6, "self"),
                     (1, 42, "oracle"), (1234, 7, "oracle"), (5, 6, "oracle")]
    assert _seeds("1234:7,5:6") == [(1234, 7), (5, 6)] and _seeds("none") == []
    assert parse_args(["r.yaml", "--reseed", "none"])[0].reseed == []
    for bad in ("12", "1:x", "1:2,", "-1:2"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected SEED:DATA_SEED"):
            _seeds(bad)


def _records(scores: dict[int, float]) -> list[dict]:
    return [{"category": "color", "index": i, "score": v} for i, v in scores.items()]


def test_overrides_after_the_variant_names_are_overrides(capsys):
    args, overrides = parse_args(["r.yaml", "a=1", "--variants", "srum", "oracle", "b=2", "c=3", "--reseed", "5:6"])
    assert args.variants == ["srum", "oracle"] and overrides == ["a=1", "b=2", "c=3"] and args.reseed == [(5, 6)]
    assert parse_args(["r.yaml"])[0].variants == list(VARIANTS) and parse_args(["r.yaml"])[0].reseed == [(1234, 7)]
    for argv, said in ((["--variants", "srum", "nope", "b=2"], "nope: not a variant"),
                       (["--variants", "b=2"], "no variant named")):
        with pytest.raises(SystemExit):
            parse_args(["r.yaml", *argv])
        assert f"--variants: {said}; expected some of srum " in capsys.readouterr().err


def test_evaluation_seed_lists(capsys):
    args = parse_args(["r.yaml", "--eval-seeds", "3,4", "--test-seeds", "none"])[0]
    assert args.eval_seeds == [3, 4] and args.test_seeds == []
    assert parse_args(["r.yaml"])[0].test_seeds == [0] and _ints("0,12") == [0, 12]
    for argv, said in ((["--eval-seeds", "none"], "--eval-seeds: at least one seed"),
                       (["--test-seeds", "1,x"], "'1,x': expected comma-separated non-negative integers")):
        with pytest.raises(SystemExit):
            parse_args(["r.yaml", *argv])
        assert said in capsys.readouterr().err


def test_a_variant_the_recipe_cannot_run_stops_before_any_run(tmp_path):
    online = RECIPE.parent / "shapes_online.yaml"  # nft: equal rewards give no update, so self_distill is refused
    with pytest.raises(SystemExit, match=r"^ablate.py: variant self_distill: objective.kind=nft with reward.source="
                                         r"uniform: equal rewards give zero advantages"):
        main([str(online), "--variants", "srum", "self_distill", "--out", str(tmp_path / "ablate")])
    # Not asked for by name: the default list leaves it out, with a warning, and keeps the rest; a run of several
    # rounds is judged by its last.
    kept = runnable(str(online), expand(list(VARIANTS), tmp_path), [])
    assert "self_distill" not in {v.name for v in kept} and {"srum", "oracle"} <= {v.name for v in kept}
    online_rounds = load_config(online).train.rounds
    last = tmp_path / "srum" / f"round{online_rounds}"
    assert expand(["srum"], tmp_path, rounds=online_rounds)[0].export == last / "export"
    with pytest.raises(SystemExit, match=r"^ablate.py: train.max_steps=-3 must be > 0$"):
        main([str(RECIPE), "--out", str(tmp_path / "ablate"), "train.max_steps=-3"])
    assert not (tmp_path / "ablate").exists()  # nothing ran, nothing was written


def test_table_by_hand(tmp_path):
    base = [[{"categories": {"color": 0.5, "shape": 0.3}, "overall": 0.4},
             {"categories": {"color": 0.7, "shape": 0.3}, "overall": 0.5}]]
    # Two training runs of srum at the same two evaluation seeds: by evaluation seed (0.6 + 0.8) / 2 = 0.7 and
    # (0.7 + 0.5) / 2 = 0.6, by training run 0.65 and 0.65.
    srum = [[{"categories": {"color": 0.8, "shape": 0.4}, "overall": 0.6},
             {"categories": {"color": 0.8, "shape": 0.6}, "overall": 0.7}],
            [{"categories": {"color": 1.0, "shape": 0.6}, "overall": 0.8},
             {"categories": {"color": 0.6, "shape": 0.4}, "overall": 0.5}]]
    # Three prompts, the base's two seeds pooled per prompt (means 0.25, 0.5, 0.5); srum adds 0.25, 0.25 and 0.5 to
    # them: every resample's mean difference lies in [0.25, 0.5], its mean is 1/3.
    base_rec = _records({0: 0.0, 1: 0.5, 2: 0.5}) + _records({0: 0.5, 1: 0.5, 2: 0.5})
    srum_rec = _records({0: 0.5, 1: 0.75, 2: 1.0})
    header, rows = table_rows([Evaluated("base", base, base_rec), Evaluated("srum", srum, srum_rec, 7.5),
                               Evaluated("self_distill", [base[0][:1]], base_rec)])
    assert header == ["run", "color", "shape", "overall", "evaluation-seed spread", "training-seed spread",
                      "error removed", "vs base (paired 95%)", "vs self_distill (paired 95%)", "minutes"]
    assert rows[0] == ["base", pytest.approx(0.6), pytest.approx(0.3), pytest.approx(0.45), pytest.approx(0.1),
                       None, None, None, None, None]
    assert rows[1][:7] == ["srum", pytest.approx(0.8), pytest.approx(0.5), pytest.approx(0.65), pytest.approx(0.1),
                           pytest.approx(0.0), pytest.approx((0.65 - 0.45) / 0.55)]
    assert rows[1][7]["delta"] == pytest.approx(1 / 3) and 0.25 <= rows[1][7]["lo"] <= rows[1][7]["hi"] <= 0.5
    assert rows[1][8]["delta"] == pytest.approx(1 / 3) and rows[1][9] == 7.5
    # One run at one evaluation seed: no spreads; the control against itself: no comparison.
    assert rows[2][4:6] == [None, None] and rows[2][7]["delta"] == 0.0 and rows[2][8] is None
    write_tables(tmp_path, header, rows)
    md = (tmp_path / "ablation.md").read_text().splitlines()
    assert md[0] == ("| run | color | shape | overall | evaluation-seed spread | training-seed spread | "
                     "error removed | vs base (paired 95%) | vs self_distill (paired 95%) | minutes |")
    assert md[2] == "| base | 0.600 | 0.300 | 0.450 | 0.100 |  |  |  |  |  |"
    lo, hi = rows[1][7]["lo"], rows[1][7]["hi"]
    assert md[3] == f"| srum | 0.800 | 0.500 | 0.650 | 0.100 | 0.000 | 0.364 | +0.333 [{lo:+.3f}, {hi:+.3f}] | " \
                    f"+0.333 [{lo:+.3f}, {hi:+.3f}] | 7.500 |"
    csv_rows = (tmp_path / "ablation.csv").read_text().splitlines()
    assert csv_rows[0].endswith("vs base (paired 95%),vs base (paired 95%) lo,vs base (paired 95%) hi,"
                                "vs self_distill (paired 95%),vs self_distill (paired 95%) lo,"
                                "vs self_distill (paired 95%) hi,minutes")
    assert csv_rows[2] == (f"srum,0.800,0.500,0.650,0.100,0.000,0.364,0.333,{lo:.3f},{hi:.3f},0.333,{lo:.3f},"
                           f"{hi:.3f},7.500")
    with Image.open(tmp_path / "ablation.png") as png:  # a row per run after the base; the control's band shaded
        assert png.height == 24 + 24 * 2 + 24
    band = interval_chart([("srum", rows[1][7])], {"delta": 0.0, "lo": -0.02, "hi": 0.02})
    assert band.getpixel((140, band.height - 20)) == (220, 220, 220)  # the left end of the axis (−0.03) lies in it


def test_test_split_columns_by_hand(tmp_path):
    """The held-out split's score (mean over training runs and test seeds) and its paired comparison with the
    base's test images; the CSV splits that comparison like the val ones."""
    val = [{"categories": {"color": 0.5}, "overall": 0.5}]
    runs = [Evaluated("base", [val], _records({0: 0.5})), Evaluated("srum", [val, val], _records({0: 0.5}))]
    # Two prompts; the base's test scores 0.2 and 0.4; srum's two training runs 0.4 and 0.6 on prompt 0 (pooled:
    # 0.5, +0.3) and 0.4 on prompt 1 both times (0.0): every resample's mean lies in [0, 0.3], the full mean 0.15.
    test = [Evaluated("base", [[{"categories": {"color": 0.3}, "overall": 0.3}]], _records({0: 0.2, 1: 0.4})),
            Evaluated("srum", [[{"categories": {"color": 0.5}, "overall": 0.5}],
                               [{"categories": {"color": 0.3}, "overall": 0.3}]],
                      _records({0: 0.4, 1: 0.4}) + _records({0: 0.6, 1: 0.4}))]
    header, rows = table_rows(runs, test=test)
    assert header[-3:] == ["test", "test vs base (paired 95%)", "minutes"]
    assert rows[0][-3:] == [pytest.approx(0.3), None, None]
    assert rows[1][-3] == pytest.approx(0.4) and rows[1][-2]["delta"] == pytest.approx(0.15)
    assert 0.0 <= rows[1][-2]["lo"] <= rows[1][-2]["hi"] <= 0.3
    write_tables(tmp_path, header, rows)
    csv_header = (tmp_path / "ablation.csv").read_text().splitlines()[0]
    assert csv_header.endswith(",test,test vs base (paired 95%),test vs base (paired 95%) lo,"
                               "test vs base (paired 95%) hi,minutes")
    header, rows = table_rows(runs, test=test, understanding=[0.8, 0.75])  # one accuracy per row, before minutes
    assert header[-2:] == ["understanding", "minutes"] and [r[-2] for r in rows] == [0.8, 0.75]
    with pytest.raises(ValueError, match="test rows"):
        table_rows(runs, test=test[:1])


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as sock:  # nothing listens there: a run can take it
        sock.bind(("127.0.0.1", port))


def test_load_evaluated_pools_seeds_and_names_a_damaged_file(tmp_path):
    for seed, scores in ((0, {0: 0.0}), (1, {0: 1.0})):
        (tmp_path / f"s{seed}").mkdir()
        (tmp_path / f"s{seed}" / "scores.json").write_text(json.dumps({"categories": {"color": 0.5}, "overall": 0.5}))
        (tmp_path / f"s{seed}" / "images.json").write_text(json.dumps(_records(scores)))
    paths = [[tmp_path / "s0" / "scores.json", tmp_path / "s1" / "scores.json"]]
    run = load_evaluated("srum", paths, 2.0)
    assert len(run.scores[0]) == 2 and [r["score"] for r in run.records] == [0.0, 1.0] and run.minutes == 2.0
    (tmp_path / "s1" / "images.json").unlink()  # written before images.json existed: no paired columns
    assert load_evaluated("srum", paths).records is None
    (tmp_path / "s1" / "scores.json").write_text("{")
    with pytest.raises(DamagedArtifact, match=r"s1/scores.json: unreadable JSON"):
        load_evaluated("srum", paths)
