"""Ablation runner: variant expansion and the table layout, on hand-made scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from srum.ablation import VARIANTS, expand, table_rows, write_tables
from srum.config import load_config

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
    assert by_name["oracle"].reward.source == "oracle"
    with pytest.raises(ValueError, match="unknown ablation variant"):
        expand(["nope"], tmp_path)


def test_table_by_hand(tmp_path):
    base = [{"categories": {"color": 0.5, "shape": 0.3}, "overall": 0.4},
            {"categories": {"color": 0.7, "shape": 0.3}, "overall": 0.5}]
    srum = [{"categories": {"color": 0.8, "shape": 0.4}, "overall": 0.6}]
    cats, rows = table_rows([("base", base), ("srum", srum)])
    assert cats == ["color", "shape"]
    assert rows[0] == ["base", pytest.approx(0.6), pytest.approx(0.3), pytest.approx(0.45), pytest.approx(0.1)]
    assert rows[1] == ["srum", 0.8, 0.4, 0.6, None]  # one seed: no spread
    write_tables(tmp_path, cats, rows)
    md = (tmp_path / "ablation.md").read_text().splitlines()
    assert md[0] == "| run | color | shape | overall | seed spread |"
    assert md[2] == "| base | 0.600 | 0.300 | 0.450 | 0.100 |"
    assert (tmp_path / "ablation.csv").read_text().splitlines()[2] == "srum,0.800,0.400,0.600,"
    assert (tmp_path / "ablation.png").stat().st_size > 0
