"""Fault injection on 2 CPU ranks: a planted checkpoint file executes nothing, a damaged latest checkpoint falls back
to the previous one, a diverging run stops naming a good checkpoint. (kill -9 at stage boundaries and inside stages:
test_srum_pipeline.py and test_deepspeed_cpu.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).with_name("ds_train.py")


def launch(out: Path, steps: int, port: int, *overrides: str) -> subprocess.CompletedProcess:
    if shutil.which("deepspeed") is None:
        pytest.skip("the deepspeed launcher is not on PATH")
    cmd = ["deepspeed", "--num_gpus", "2", "--master_port", str(port), str(SCRIPT), str(out), "2", str(steps),
           *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SCRIPT.parents[2])}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


class Payload:
    """Pickles to a call that creates a file: what a planted checkpoint would run on a full unpickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_planted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    first = launch(tmp_path, 2, 29810)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    planted = tmp_path / "checkpoints" / "step0000002" / "mp_rank_00_model_states.pt"
    marker = tmp_path / "code-ran"
    torch.save({"module": Payload(marker)}, planted)
    again = launch(tmp_path, 4, 29811)
    assert again.returncode != 0
    assert f"{planted}: refused to load" in again.stderr
    assert not marker.exists()


def test_divergence_stops_and_points_latest_before_the_first_bad_step(tmp_path):
    run = launch(tmp_path, 12, 29812, "train.lr=1e6")  # DeepSpeed skips the overflowing steps silently
    assert run.returncode != 0
    lines = [ln for ln in run.stderr.splitlines() if "TrainingDiverged: training diverged" in ln]
    assert lines and "likely cause: the learning rate (train.lr=1e+06)" in lines[0]
    first_bad = int(lines[0].split("grad norm step ")[1].split(":")[0])
    latest = (tmp_path / "checkpoints" / "latest")
    if latest.is_file():
        assert int(latest.read_text().strip()[4:]) < first_bad
        assert f"latest now points at {tmp_path / 'checkpoints' / latest.read_text().strip()}" in lines[0]
    else:
        assert "will restart from step 0" in lines[0]


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    unbroken = launch(tmp_path / "a", 6, 29813)
    assert unbroken.returncode == 0, unbroken.stdout[-3000:] + unbroken.stderr[-3000:]
    first = launch(tmp_path / "b", 4, 29814)  # checkpoints step 2 and step 4 (latest)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    shard = tmp_path / "b" / "checkpoints" / "step0000004" / "zero_pp_rank_1_mp_rank_00_optim_states.pt"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # only rank 1 can see the damage
    resumed = launch(tmp_path / "b", 6, 29815)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "step0000004 is damaged" in resumed.stderr and "falling back to step0000002" in resumed.stderr
    wa = load_file(str(tmp_path / "a" / "final.safetensors"))
    wb = load_file(str(tmp_path / "b" / "final.safetensors"))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
