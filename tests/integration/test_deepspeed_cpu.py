"""2-rank DeepSpeed on CPU (gloo): ZeRO-2 and ZeRO-3 train identically, and a killed run resumes exactly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).with_name("ds_train.py")


def launch(out: Path, stage: int, steps: int, crash_at: int | None = None) -> subprocess.CompletedProcess:
    if shutil.which("deepspeed") is None:
        pytest.skip("the deepspeed launcher is not on PATH")
    cmd = ["deepspeed", "--num_gpus", "2", "--master_port", str(29500 + stage * 10 + (crash_at or 0)), str(SCRIPT),
           str(out), str(stage), str(steps)] + ([str(crash_at)] if crash_at is not None else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SCRIPT.parents[2])}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def zero2(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zero2")
    run = launch(out, 2, 4)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out


def test_zero2_equals_zero3(zero2, tmp_path):
    run = launch(tmp_path, 3, 4)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    a = json.loads((zero2 / "losses.json").read_text())
    b = json.loads((tmp_path / "losses.json").read_text())
    assert len(a) == 4
    for step in a:
        assert b[step]["loss"] == pytest.approx(a[step]["loss"], rel=1e-5, abs=1e-6)
    wa, wb = load_file(str(zero2 / "final.safetensors")), load_file(str(tmp_path / "final.safetensors"))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5
    # ZeRO-3 shards the parameters across the 2 ranks; ZeRO-2 keeps a full copy on each
    n2 = json.loads((zero2 / "params.json").read_text())["rank_numel"]
    n3 = json.loads((tmp_path / "params.json").read_text())["rank_numel"]
    assert n3 < 0.6 * n2


def test_killed_run_resumes_to_the_same_weights(zero2, tmp_path):
    crashed = launch(tmp_path, 2, 4, crash_at=3)  # dies after step 3; the checkpoint of step 2 is on disk
    assert crashed.returncode != 0
    assert (tmp_path / "checkpoints" / "latest").is_file() and not (tmp_path / "final.safetensors").exists()
    resumed = launch(tmp_path, 2, 4)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    a, b = load_file(str(zero2 / "final.safetensors")), load_file(str(tmp_path / "final.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    logged = json.loads((tmp_path / "losses.json").read_text())
    assert set(logged) == {"2", "3"}  # the resumed process ran only the unfinished steps


def test_only_the_generation_side_moved(zero2):
    from srum.models.bagel.config import BagelConfig
    from srum.models.bagel.model import Bagel
    from srum.models.bagel.unified import BagelUnified

    torch.manual_seed(0)  # the script's initialisation
    init = Bagel(BagelConfig.tiny()).state_dict()
    final = load_file(str(zero2 / "final.safetensors"))
    moved = {k for k in init if not torch.equal(init[k], final[k])}
    assert moved and all(BagelUnified.is_generation_parameter(k) for k in moved)
    assert any("mlp_moe_gen" in k for k in moved) and "llm2vae.weight" in moved
