"""`deepspeed --num_gpus 2 launch/srum.py recipes/shapes.yaml` end to end on a tiny random checkpoint:
every stage's files, and a run killed with SIGKILL mid-training that resumes to the same weights."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from srum.models.bagel.unified import BagelUnified


pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkpoint(tiny_checkpoint) -> Path:
    return tiny_checkpoint


def command(checkpoint: Path, out: Path, port: int) -> list[str]:
    if shutil.which("deepspeed") is None:
        pytest.skip("the deepspeed launcher is not on PATH")
    return ["deepspeed", "--num_gpus", "2", "--master_port", str(port), str(ROOT / "launch" / "srum.py"),
            str(ROOT / "recipes" / "shapes.yaml"), f"model.path={checkpoint}", f"output.dir={out}",
            "generate.limit_per_category=2", "generate.batch_size=8", "generate.num_timesteps=4",
            "train.max_steps=30", "train.save_every=5", "train.micro_batch_size=2", "eval.limit_per_category=1",
            "log.every=1"]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)


def first_step(done: subprocess.CompletedProcess) -> tuple[str, dict[str, str]]:
    """The logged line of training step 0, and its metrics by name."""
    line = [ln for ln in done.stderr.splitlines() if "stage=train step=0 " in ln][0]
    return line, dict(kv.split("=", 1) for kv in line.split("stage=train ")[1].split())


def objective_round(checkpoint: Path, out: Path, port: int, flags: list[str]) -> tuple[str, dict[str, str]]:
    """One round with `flags` into `out`, which must succeed; its step-0 line and metrics (first_step)."""
    done = run(command(checkpoint, out, port) + flags)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return first_step(done)


def changed_weights(checkpoint: Path, run_dir: Path) -> set[str]:
    """The names of the tensors round 1's export changed from the starting checkpoint."""
    base = load_file(str(checkpoint / "model.safetensors"))
    moved = load_file(str(run_dir / "round1" / "export" / "model.safetensors"))
    return {k for k in base if not torch.equal(base[k], moved[k])}


def kill_when(cmd: list[str], marker: Path) -> None:
    """Start `cmd` and SIGKILL its whole process group as soon as `marker` exists."""
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not marker.exists():
        assert proc.poll() is None and time.time() < deadline, f"the run ended before {marker} appeared"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def kill_at_first_checkpoint(cmd: list[str], round_dir: Path) -> None:
    """Start `cmd` and SIGKILL its whole process group once `round_dir` has its first resume checkpoint."""
    kill_when(cmd, round_dir / "checkpoints" / "latest")


def test_round_writes_every_stage_and_resumes_after_kill(checkpoint, tmp_path):
    a = tmp_path / "a"
    shm_before = set(Path("/dev/shm").glob("deepspeed_allreduce_buffer_*"))
    done = run(command(checkpoint, a, 29611))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert set(Path("/dev/shm").glob("deepspeed_allreduce_buffer_*")) <= shm_before  # no shared-memory files left
    r1 = a / "round1"
    for path in ("generate/manifest.json", "score/manifest.json", "checkpoints/manifest.json", "export/DONE.json",
                 "export/model.safetensors", "eval/scores.json", "eval/report.html"):
        assert (r1 / path).is_file(), path
    assert (r1 / "report.html").read_text().count("<figure>") == 32  # 2 prompts × 8 categories × 2 images
    manifest = json.loads((a / "manifest.json").read_text())
    assert {"config", "versions", "git_hash"} <= set(manifest)
    judged = [row for f in sorted((r1 / "score" / "judge").glob("*.json")) for row in json.loads(f.read_text())]
    assert len(judged) == 32 and all(-1 <= row["global_score"] <= 1 for row in judged)
    scores = json.loads((r1 / "eval" / "scores.json").read_text())
    assert scores["n_images"] == 8
    for stage in ("export", "eval"):
        assert json.loads((r1 / stage / "manifest.json").read_text())["stage"] == stage
    assert (r1 / "checkpoints" / "latest").read_text().strip() == "step0000030"  # the final step is the latest
    for noise in ("built successfully", "is deprecated", "Attempting to get learning rate"):  # ranks' third-party
        assert noise not in done.stderr + done.stdout, noise  # lines, filtered (the launcher's own are not ours)

    # The same run killed (SIGKILL, whole process group) once training has written a checkpoint, then rerun.
    b = tmp_path / "b"
    kill_at_first_checkpoint(command(checkpoint, b, 29612), b / "round1")  # 25 of 30 steps still to run
    assert not (b / "round1" / "export" / "DONE.json").exists()
    resumed = run(command(checkpoint, b, 29613))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "chunks_done=0" in resumed.stderr  # generation was not redone
    wa = load_file(str(r1 / "export" / "model.safetensors"))
    wb = load_file(str(b / "round1" / "export" / "model.safetensors"))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


ONLINE = ["train.rounds=2", "generate.images_per_prompt=2", "generate.limit_per_category=1", "objective.kind=nft",
          "objective.constraint=none", "train.max_steps=12", "train.save_every=3", "eval.base=true"]


def test_two_online_rounds_resume_after_kill_in_round_two(checkpoint, tmp_path):
    """Online rounds (DiffusionNFT, a fresh prompt window and fresh seeds per round): a kill -9 in round 2's training
    resumes to the weights of an unbroken run, and the run writes its score curve."""
    a = tmp_path / "a"
    done = run(command(checkpoint, a, 29614) + ONLINE)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    curve = json.loads((a / "curve.json").read_text())
    assert [p["round"] for p in curve] == [0, 1, 2] and curve[0]["seconds"] == 0.0
    assert curve[2]["seconds"] > curve[1]["seconds"] > 0 and (a / "curve.png").is_file()
    prompts = [[r["prompt"] for f in sorted((a / f"round{k}" / "generate").glob("chunk_*.json"))
                for r in json.loads(f.read_text())] for k in (1, 2)]
    assert prompts[0] != prompts[1]  # round 2 draws the next window of train prompts
    truth = json.loads((a / "round2" / "score" / "manifest.json").read_text())["reward_truth"]
    assert truth["images"] == 16 and 0.0 <= truth["truth_mean"] <= 1.0

    b = tmp_path / "b"
    kill_at_first_checkpoint(command(checkpoint, b, 29615) + ONLINE, b / "round2")
    assert not (b / "round2" / "export" / "DONE.json").exists()
    resumed = run(command(checkpoint, b, 29616) + ONLINE)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    wa = load_file(str(a / "round2" / "export" / "model.safetensors"))
    wb = load_file(str(b / "round2" / "export" / "model.safetensors"))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_kl_to_the_starting_checkpoint_and_rounds_that_restart_from_it(checkpoint, tmp_path):
    """objective.kl_reference=base: round 2's frozen reference is the run's starting checkpoint, not round 1's
    export, so its KL term is already above zero at round 2's first step, where against the round's start (round 1
    here, whose start is the checkpoint) it is zero. With train.start_from=base round 2 trains the checkpoint
    itself, so that term starts at zero again, on samples drawn by round 1's export all the same."""
    flags = ["train.rounds=2", "generate.images_per_prompt=2", "generate.limit_per_category=1", "train.max_steps=6",
             "objective.constraint=kl", "objective.kl_weight=1.0", "objective.kl_reference=base", "eval.prompts=null"]
    first_steps = {}
    for name, port, extra in (("on", 29617, []), ("restart", 29619, ["train.start_from=base"])):
        done = run(command(checkpoint, tmp_path / name, port) + flags + extra)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        first_steps[name] = [float(kl) for kl in re.findall(r"stage=train step=0 .*?\bkl=(\S+)", done.stderr)]
    assert len(first_steps["on"]) == 2 and len(first_steps["restart"]) == 2, first_steps
    assert first_steps["on"][0] < 1e-9 and first_steps["on"][1] > 1e-6, first_steps
    assert max(first_steps["restart"]) < 1e-9, first_steps
    drawn = [load_file(str(tmp_path / name / "round2" / "generate" / "chunk_00000.safetensors"))["latents"]
             for name in ("on", "restart")]
    assert torch.equal(drawn[0], drawn[1])  # both by round 1's export, the same in both runs
    exports = [load_file(str(tmp_path / name / "round2" / "export" / "model.safetensors")) for name in ("on", "restart")]
    assert any(not torch.equal(exports[0][k], exports[1][k]) for k in exports[0] if "moe_gen" in k)


def test_flow_grpo_round_trains_on_its_sde_rollouts(checkpoint, tmp_path):
    """objective.kind=flow_grpo end to end: the rollouts keep their trajectories (noise first, the latents last),
    the policy ratio starts at 1 (nothing clipped, no drift at step 0) and the generation side moves."""
    a = tmp_path / "a"
    flags = ["generate.images_per_prompt=2", "generate.limit_per_category=1", "reward.source=oracle",
             "objective.kind=flow_grpo", "objective.constraint=none", "objective.text_dropout=0",
             "generate.sde_noise=0.7", "train.max_steps=4", "eval.prompts=null"]
    first, _ = objective_round(checkpoint, a, 29640, flags)
    chunk = load_file(str(a / "round1" / "generate" / "chunk_00000.safetensors"))
    assert chunk["trajectory"].shape[:2] == (8, 4)  # 8 images × 4 grid points (generate.num_timesteps=4)
    assert "clip_fraction=0 " in first and "kl=0 " in first
    assert any("moe_gen" in k for k in changed_weights(checkpoint, a))


def test_dpo_round_trains_on_best_against_worst_pairs(checkpoint, tmp_path):
    """objective.kind=dpo end to end: the pairs start with no preference (−log σ(0) = log 2, the model equal to its
    reference) and the generation side moves."""
    a = tmp_path / "a"
    flags = ["generate.images_per_prompt=2", "reward.source=oracle", "objective.kind=dpo", "objective.constraint=none",
             "objective.dpo_beta=500", "train.max_steps=4", "eval.prompts=null"]
    first, _ = objective_round(checkpoint, a, 29642, flags)
    assert "reward_term=0.69315 " in first and "pair_accuracy=0 " in first and "kl=0 " in first, first
    assert any("moe_gen" in k for k in changed_weights(checkpoint, a))


def test_judge_distill_round_regresses_on_the_starts_guided_velocity(checkpoint, tmp_path):
    """objective.kind=judge_distill end to end: step 0 starts at the reference (kl=0) with a
    positive loss from the guided rows alone, the judge's log-odds are logged and the generation side moves."""
    a = tmp_path / "a"
    flags = ["objective.kind=judge_distill", "objective.constraint=none", "objective.judge_until=0",
             "objective.text_dropout=0", "train.max_steps=3", "eval.prompts=null"]
    first, fields = objective_round(checkpoint, a, 29644, flags)
    assert fields["kl"] == "0" and float(fields["reward_term"]) > 0, first
    assert fields["guided_fraction"] == "1" and "judge_log_odds" in fields, first
    assert any("moe_gen" in k for k in changed_weights(checkpoint, a))


def test_draft_round_ascends_its_own_judges_verdict_on_fresh_draws(checkpoint, tmp_path):
    """objective.kind=draft end to end, held by a KL term to the round's start: step 0 starts at the reference
    (kl=0) with the judge's log-odds as its loss, and only the generation side moves (the judge stays as it was)."""
    a = tmp_path / "a"
    flags = ["objective.kind=draft", "objective.draft_steps=2", "objective.constraint=kl", "objective.kl_weight=1.0",
             "objective.text_dropout=0", "train.max_steps=3", "eval.prompts=null"]
    first, fields = objective_round(checkpoint, a, 29646, flags)
    assert fields["kl"] == "0" and float(fields["loss"]) == pytest.approx(-float(fields["judge_log_odds"])), first
    changed = changed_weights(checkpoint, a)
    assert changed and all(BagelUnified.is_generation_parameter(k) for k in changed), sorted(changed)


def test_damaged_reward_file_stops_with_one_line(checkpoint, tmp_path):
    """A reward map value no judge writes (1000) in a valid file: the rerun stops before training, in one line
    naming the file and the fix, instead of training a worse model and exiting 0."""
    a = tmp_path / "a"
    done = run(command(checkpoint, a, 29617) + ["train.max_steps=2", "eval.prompts=null"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    reward = a / "round1" / "score" / "reward" / "chunk_00000.safetensors"
    maps = load_file(str(reward))
    key = sorted(maps)[0]
    maps[key][0] = 1000.0
    save_file(maps, str(reward))
    for folder in ("export", "checkpoints"):
        shutil.rmtree(a / "round1" / folder)
    again = run(command(checkpoint, a, 29618) + ["train.max_steps=2", "eval.prompts=null"])
    assert again.returncode != 0
    lines = [ln for ln in again.stderr.splitlines() if ln.startswith("srum: rank 0:")]
    assert len(lines) == 1, again.stderr[-3000:]
    assert f"{reward}: '{key}' has values in" in lines[0] and "outside [-1, 1]" in lines[0], lines[0]
    assert "Traceback" not in again.stderr
    assert (a / "errors" / "rank0.log").read_text().startswith("Traceback")  # kept for whoever debugs it


SHORT = ["train.max_steps=6", "train.save_every=3"]


@pytest.fixture(scope="module")
def short_run(tiny_checkpoint, tmp_path_factory) -> Path:
    """One unbroken SHORT run, the reference every killed-and-resumed SHORT run must end equal to."""
    ref = tmp_path_factory.mktemp("short") / "ref"
    done = run(command(tiny_checkpoint, ref, 29620) + SHORT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return ref


@pytest.mark.parametrize("stage, marker", [
    ("generate", "round1/generate/chunk_00000.json"),  # inside generation: one chunk of four done
    ("judge", "round1/score/judge/chunk_00000.json"),  # inside judging
    ("evaluation", "round1/export/DONE.json"),  # between the round's export and its evaluation
])
def test_kill_in_a_stage_resumes_to_the_same_run(checkpoint, short_run, tmp_path, stage, marker):
    """kill -9 of the whole run at a stage boundary or inside a stage: the rerun redoes only what is missing and
    ends with the weights, evaluation and report of an unbroken run, and no temp files left behind."""
    port = 29620 + 3 * ["generate", "judge", "evaluation"].index(stage)
    ref = short_run
    out = tmp_path / "killed"
    kill_when(command(checkpoint, out, port + 1) + SHORT, out / marker)
    assert not (out / "round1" / "eval" / "scores.json").exists()
    resumed = run(command(checkpoint, out, port + 2) + SHORT)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming: stage=" in resumed.stderr or stage == "evaluation"
    wa = load_file(str(ref / "round1" / "export" / "model.safetensors"))
    wb = load_file(str(out / "round1" / "export" / "model.safetensors"))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    sa, sb = (json.loads((d / "round1" / "eval" / "scores.json").read_text()) for d in (ref, out))
    assert sa["overall"] == sb["overall"] and sa["categories"] == sb["categories"]
    assert (out / "round1" / "report.html").is_file() and not list(out.rglob(".*.tmp"))
