"""The training stage's bookkeeping: step counts, each rank's sample order (every sample once per epoch, the same
whatever ran before: resumes take the unbroken run's steps), and reading a round's samples back from the typed
stage records (job order, dropped images left out, damaged maps named)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from srum.config import load_config
from srum.records import GenerateFolder, GenerateRow, JudgeRow, ScoreFolder
from srum.training import load_training_samples, sample_indices, total_steps
from srum.utils.artifacts import DamagedArtifact
from srum.utils.dist import DistInfo

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "shapes.yaml"


def _cfg(*overrides: str):
    return load_config(RECIPE, ["model.path=unused", *overrides])


def test_step_count_from_steps_or_epochs():
    assert total_steps(_cfg("train.max_steps=7"), n_samples=1000, world_size=2) == 7
    cfg = _cfg("train.max_steps=null", "train.epochs=2", "train.micro_batch_size=2", "train.grad_accum_steps=2")
    assert total_steps(cfg, n_samples=10, world_size=2) == 3  # ceil(2 epochs × 10 samples / (2 × 2 × 2) per step)
    assert total_steps(cfg, n_samples=1, world_size=2) == 1


def test_each_epoch_shows_every_sample_once_across_ranks_and_micro_batches():
    cfg = _cfg("train.micro_batch_size=2", "train.grad_accum_steps=3", "train.data_seed=5")
    n, world = 12, 2
    steps = n // (2 * 3 * world)  # one epoch = 1 step here; take 3 epochs
    seen = []
    for step in range(3 * steps):
        for micro in range(3):
            for rank in range(world):
                seen += sample_indices(n, step, micro, cfg, DistInfo(rank, world, rank, "gloo"))
    epochs = [seen[k * n:(k + 1) * n] for k in range(3)]
    assert all(sorted(e) == list(range(n)) for e in epochs)  # a permutation per epoch
    assert epochs[0] != epochs[1]  # reshuffled every epoch
    # A resumed run computes the same batch for a step without replaying earlier ones.
    assert sample_indices(n, 2, 1, cfg, DistInfo(1, world, 1, "gloo")) == seen[(2 * 3 + 1) * 4 + 2:(2 * 3 + 1) * 4 + 4]


def _round(tmp_path: Path, maps: dict[str, torch.Tensor]) -> tuple[Path, Path]:
    gen, scored = GenerateFolder(tmp_path / "generate"), ScoreFolder(tmp_path / "score")
    (gen.path / "images").mkdir(parents=True)
    rows = [GenerateRow(j, "color", j // 2, f"prompt {j // 2}", seed=j, file=gen.image_name(j)) for j in range(4)]
    latents = torch.arange(4 * 16 * 2 * 2, dtype=torch.float32).reshape(4, 16, 2, 2)
    for k in (1, 0):  # written out of order: the reader sorts by job
        gen.write_chunk(k, rows[2 * k:2 * k + 2], [Image.new("RGB", (32, 32))] * 2, latents[2 * k:2 * k + 2])
        judged = [JudgeRow(r.job, r.prompt, r.file, str(r.job) in maps, 0.5, [], [], [], 0, 0.5, None)
                  for r in rows[2 * k:2 * k + 2]]
        scored.write_chunk(k, judged, {j: m for j, m in maps.items() if int(j) // 2 == k})
    return gen.path, scored.path


def _tokens(latents: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) → (B, h·w, C)
    return latents.flatten(2).transpose(1, 2)


def test_samples_come_back_in_job_order_without_dropped_images(tmp_path):
    gen, scored = _round(tmp_path, {"0": torch.full((4,), 0.5), "2": torch.full((4,), -1.0), "3": torch.ones(4)})
    samples = load_training_samples(gen, scored, _tokens)
    assert [s.job for s in samples] == [0, 2, 3]  # job 1 was dropped by the reward rules
    assert [s.group for s in samples] == [("color", 0), ("color", 1), ("color", 1)]
    assert torch.equal(samples[1].x0, _tokens(torch.arange(256, dtype=torch.float32).reshape(4, 16, 2, 2))[2])
    assert samples[1].weights.tolist() == [-1.0] * 4


@pytest.mark.parametrize("bad, message", [(torch.full((4,), 3.0), "outside"), (torch.ones(5), "has shape")])
def test_a_damaged_reward_map_is_named(tmp_path, bad, message):
    gen, scored = _round(tmp_path, {"0": torch.ones(4), "3": bad})
    with pytest.raises(DamagedArtifact, match=f"chunk_00001.safetensors.*'3'.*{message}"):
        load_training_samples(gen, scored, _tokens)


def test_replayed_rounds_keep_the_weights_of_their_own_groups(tmp_path):
    from srum.pipeline import replay_samples

    # Both rounds reuse the group keys ("color", 0) and ("color", 1): advantages over the union would mix them.
    _round(tmp_path / "round1", {"0": torch.full((4,), 0.5), "2": torch.full((4,), -1.0), "3": torch.ones(4)})
    _round(tmp_path / "round2", {"0": torch.ones(4), "1": torch.zeros(4), "2": torch.full((4,), 0.6),
                                 "3": torch.full((4,), 0.6)})
    grpo = ["objective.kind=group_relative", "objective.constraint=none", "objective.adv_std_floor=0.1",
            "objective.adv_clip=2.0"]

    def weights(r: int, replay: int) -> list[float]:
        samples = replay_samples(tmp_path, r, _cfg(*grpo, f"train.replay_rounds={replay}"), _tokens)
        assert all(float(s.weights.min()) == float(s.weights.max()) for s in samples)  # uniform maps stay uniform
        return [round(float(s.weights[0]), 6) for s in samples]

    # round 1: (color, 0) holds job 0 alone (std floored: 0); (color, 1) is −1 against +1 (mean 0, std 1)
    # round 2: (color, 0) is 1 against 0 (mean 0.5, std 0.5: ±1); (color, 1) two equal images (0)
    assert weights(2, replay=2) == [0.0, -1.0, 1.0, 1.0, -1.0, 0.0, 0.0]
    assert weights(2, replay=1) == [1.0, -1.0, 0.0, 0.0]
    assert weights(1, replay=3) == [0.0, -1.0, 1.0]  # no round before the first


def test_group_noise_batches_whole_groups_that_share_their_draws():
    from srum.training import TrainSample, draw_batch, group_units

    # 6 prompts × 4 images, the prompt of sample i being i // 4; micro-batch 8 = two whole groups
    samples = [TrainSample(i, f"p{i // 4}", torch.zeros(3, 2), torch.zeros(3), ("color", i // 4)) for i in range(24)]
    cfg = _cfg("objective.kind=nft", "objective.constraint=none", "objective.group_noise=true",
               "generate.images_per_prompt=4", "train.micro_batch_size=8", "objective.text_dropout=0.5")
    units = group_units(samples, cfg.objective)
    assert units == [[4 * p + k for k in range(4)] for p in range(6)]
    seen = []
    for step in range(3):  # 3 steps × 2 ranks × 2 groups = 12 groups = two epochs of 6
        for rank in range(2):
            batch, t, noise, drop = draw_batch(samples, units, step, 0, cfg, DistInfo(rank, 2, rank, "gloo"))
            prompts = [s.job // 4 for s in batch]
            assert prompts[:4] == [prompts[0]] * 4 and prompts[4:] == [prompts[4]] * 4 and prompts[0] != prompts[4]
            seen += [prompts[0], prompts[4]]
            for a, b in ((0, 4), (4, 8)):  # one draw per group ...
                assert torch.equal(t[a:b], t[a].expand(4)) and torch.equal(drop[a:b], drop[a].expand(4))
                assert all(torch.equal(noise[k], noise[a]) for k in range(a, b))
            assert t[0] != t[4] and not torch.equal(noise[0], noise[4])  # ... and each group its own
    assert sorted(seen[:6]) == sorted(seen[6:]) == list(range(6))  # every group once per epoch

    plain = _cfg("objective.kind=nft", "objective.constraint=none", "train.micro_batch_size=8")
    assert group_units(samples, plain.objective) is None
    batch, t, noise, _ = draw_batch(samples, None, 0, 0, plain, DistInfo(0, 1, 0, "gloo"))
    assert len({s.job // 4 for s in batch}) > 2 and len(set(t.tolist())) == 8  # per-sample draws otherwise


def test_group_noise_needs_a_group_objective_and_whole_groups_per_micro_batch():
    from srum.config import ConfigError

    with pytest.raises(ConfigError, match="objective.group_noise=true needs"):
        _cfg("objective.group_noise=true")  # the shapes recipe's objective is official
    with pytest.raises(ConfigError, match="train.micro_batch_size=6"):
        _cfg("objective.kind=nft", "objective.constraint=none", "objective.group_noise=true",
             "generate.images_per_prompt=4", "train.micro_batch_size=6")


def test_map_optimality_reads_the_signed_map_as_absolute_probabilities():
    from srum.config import ConfigError
    from srum.training import TrainSample, objective_weights

    cfg = _cfg("objective.kind=nft", "objective.constraint=none", "objective.optimality=map", "reward.map=signed")
    # one group: a perfect image (M = 1 on an object, 0.5 elsewhere) and a flawed one (−0.5 on a wrong object)
    maps = [torch.tensor([1.0, 0.5, 0.5]), torch.tensor([-0.5, 0.0, 0.0])]
    samples = [TrainSample(i, "p", torch.zeros(3, 2), m, ("color", 0)) for i, m in enumerate(maps)]
    got = [s.weights.tolist() for s in objective_weights(samples, cfg.objective)]
    assert got == [[1.0, 0.75, 0.75], [0.25, 0.5, 0.5]]  # (M + 1)/2, whatever the rest of the group scored
    with pytest.raises(ConfigError, match="objective.optimality=map"):
        _cfg("objective.kind=nft", "objective.constraint=none", "objective.optimality=map")  # official map


def test_nft_without_its_negative_half_holds_bad_tokens_at_the_start():
    from srum.config import ConfigError
    from srum.training import TrainSample, objective_weights

    maps = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0])]  # image rewards 0.5 and 0: mean 0.25, std 0.25
    samples = [TrainSample(i, "p", torch.zeros(2, 2), m, ("color", 0)) for i, m in enumerate(maps)]
    base = ["objective.kind=nft", "objective.constraint=none", "objective.adv_clip=2", "objective.adv_std_floor=0.1"]
    # advantages [3 → clip 2, −1] and [−1, −1]; r = ½ + ½·A/2
    with_neg = [s.weights.tolist() for s in objective_weights(samples, _cfg(*base).objective)]
    assert with_neg == [[1.0, 0.25], [0.25, 0.25]]
    cfg = _cfg(*base, "objective.nft_negative=false")
    without = [s.weights.tolist() for s in objective_weights(samples, cfg.objective)]
    assert without == [[1.0, 0.5], [0.5, 0.5]]
    with pytest.raises(ConfigError, match="objective.nft_negative=false"):
        _cfg("objective.kind=group_relative", "objective.nft_negative=false")


def test_best_of_keeps_each_groups_best_images_above_its_lowest_at_weight_one():
    from srum.config import ConfigError
    from srum.training import TrainSample, objective_weights

    # image rewards (token means): group a 0.5, 0.25, 0.75, 0.25; group b all alike; group c 0.1, 0.5, 0.5
    maps = [torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.0]), torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.5]),
            torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0]),
            torch.tensor([0.2, 0.0]), torch.tensor([0.5, 0.5]), torch.tensor([0.0, 1.0])]
    groups = [("color", 0)] * 4 + [("color", 1)] * 2 + [("shape", 0)] * 3
    samples = [TrainSample(i, "p", torch.zeros(2, 2), m, g) for i, (m, g) in enumerate(zip(maps, groups))]
    base = ["objective.kind=best_of", "objective.constraint=none", "generate.images_per_prompt=4",
            "reward.source=oracle"]
    top1 = objective_weights(samples, _cfg(*base).objective)
    assert [s.job for s in top1] == [2, 7]  # a: 0.75; b: nothing above its lowest; c: 0.5 twice, the earlier one
    assert all(s.weights.tolist() == [1.0, 1.0] for s in top1)
    top2 = objective_weights(samples, _cfg(*base, "objective.keep_top=2").objective)
    assert [s.job for s in top2] == [0, 2, 7, 8]  # a: 0.75 and 0.5; c: both 0.5 (above 0.1)
    top3 = objective_weights(samples, _cfg(*base, "objective.keep_top=3").objective)
    assert [s.job for s in top3] == [0, 2, 7, 8]  # the third of a and of c score their group's lowest: never kept
    from srum.pipeline import plan

    assert "objective: best_of (the best 2 of K=4 per group" in plan(_cfg(*base, "objective.keep_top=2"), 2)
    with pytest.raises(ConfigError, match="objective.keep_top=2 is read by objective.kind=best_of only"):
        _cfg("objective.keep_top=2")
    with pytest.raises(ConfigError, match="objective.keep_top=4 keeps every one"):
        _cfg(*base, "objective.keep_top=4")
    with pytest.raises(ConfigError, match="objective.kind=best_of with reward.source=uniform"):
        _cfg(*base[:3], "reward.source=uniform")


def test_flow_grpo_reads_each_samples_trajectory_and_draws_consecutive_recorded_steps(tmp_path):
    from srum import flow
    from srum.training import draw_steps, objective_weights

    gen, scored = GenerateFolder(tmp_path / "generate"), ScoreFolder(tmp_path / "score")
    (gen.path / "images").mkdir(parents=True)
    rows = [GenerateRow(j, "color", 0, "prompt 0", seed=j, file=gen.image_name(j)) for j in range(2)]
    latents = torch.arange(2 * 16 * 2 * 2, dtype=torch.float32).reshape(2, 16, 2, 2)
    tokens = torch.stack([latents[i].reshape(16, 4).T for i in range(2)])  # stand-in token layout (4, 16)
    path = torch.arange(2 * 5 * 4 * 16, dtype=torch.float32).reshape(2, 5, 4, 16)  # 5 grid points
    gen.write_chunk(0, rows, [Image.new("RGB", (32, 32))] * 2, latents, path)
    maps = {"0": torch.tensor([1.0, 0.0, 0.0, 0.0]), "1": torch.zeros(4)}
    scored.write_chunk(0, [JudgeRow(r.job, r.prompt, r.file, True, 0.5, [], [], [], 0, 0.5, None) for r in rows], maps)
    to_tokens = lambda lat: tokens  # noqa: E731
    cfg = _cfg("objective.kind=flow_grpo", "objective.constraint=none", "objective.text_dropout=0",
               "generate.sde_noise=0.7", "generate.images_per_prompt=2", "generate.num_timesteps=5",
               "reward.source=oracle", "train.micro_batch_size=4", "objective.adv_std_floor=0.1")
    samples = load_training_samples(gen.path, scored.path, to_tokens, trajectories=True)
    assert all(torch.equal(s.trajectory, path[i]) for i, s in enumerate(samples))
    assert load_training_samples(gen.path, scored.path, to_tokens)[0].trajectory is None  # only when asked
    weighted = objective_weights(samples, cfg.objective)  # signed group advantages, the trajectories kept
    assert weighted[0].weights[0].item() > 0 > weighted[1].weights[0].item() and weighted[0].trajectory is not None
    batch, step = draw_steps(weighted, 3, 0, cfg, DistInfo(0, 1, 0, "gloo"))
    ts, dts = flow.euler_schedule(5, cfg.generate.timestep_shift)
    for i, s in enumerate(batch):
        j = int((step.t[i] == ts).nonzero())  # the drawn step's grid point
        assert torch.equal(step.x_t[i], s.trajectory[j]) and torch.equal(step.x_next[i], s.trajectory[j + 1])
        assert step.dt[i] == dts[j] and step.floor == float(dts[0]) and step.noise_level == 0.7
    again = draw_steps(weighted, 3, 0, cfg, DistInfo(0, 1, 0, "gloo"))[1]
    assert torch.equal(again.t, step.t)  # a resumed run draws the same steps

    plain = GenerateFolder(tmp_path / "plain")
    (plain.path / "images").mkdir(parents=True)
    plain.write_chunk(0, rows, [Image.new("RGB", (32, 32))] * 2, latents)
    with pytest.raises(DamagedArtifact, match=r"no SDE trajectory .* \(drawn without generate.sde_noise\?\)"):
        load_training_samples(plain.path, scored.path, to_tokens, trajectories=True)


def test_fresh_posterior_draws_each_x0_anew_from_its_images_posterior_at_every_step(tmp_path):
    from srum.config import ConfigError
    from srum.models.interface import Posterior
    from srum.training import draw_batch

    gen, scored = GenerateFolder(tmp_path / "generate"), ScoreFolder(tmp_path / "score")
    (gen.path / "images").mkdir(parents=True)
    rows = [GenerateRow(j, "color", 0, "prompt 0", seed=j, file=gen.image_name(j)) for j in range(2)]
    mean = torch.arange(2 * 16 * 2 * 2, dtype=torch.float32).reshape(2, 16, 2, 2)
    std = torch.stack([torch.zeros(16, 2, 2), torch.full((16, 2, 2), 2.0)])  # image 0: a point mass
    posterior = Posterior(mean, std)
    gen.write_chunk(0, rows, [Image.new("RGB", (32, 32))] * 2, posterior.sample([0, 1]), posterior=posterior)
    scored.write_chunk(0, [JudgeRow(r.job, r.prompt, r.file, True, 0.5, [], [], [], 0, 0.5, None) for r in rows],
                       {"0": torch.ones(4), "1": torch.ones(4)})
    samples = load_training_samples(gen.path, scored.path, _tokens, posteriors=True)
    assert torch.equal(samples[1].posterior.mean, _tokens(mean)[1]) and torch.equal(samples[1].posterior.std,
                                                                                       _tokens(std)[1])
    assert torch.equal(samples[1].x0, _tokens(mean + std * torch.stack(
        [torch.randn(16, 2, 2, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]))[1])
    assert load_training_samples(gen.path, scored.path, _tokens)[0].posterior is None  # only when asked

    args = ("generate.reencode=true", "train.micro_batch_size=2", "objective.text_dropout=0.5")
    fresh, fixed = _cfg(*args, "train.fresh_posterior=true"), _cfg(*args)
    one = DistInfo(0, 1, 0, "gloo")
    drawn = [draw_batch(samples, None, step, 0, fresh, one) for step in (0, 1)]
    for batch, *_ in drawn:
        by_job = {s.job: s.x0 for s in batch}
        assert torch.equal(by_job[0], _tokens(mean)[0])  # zero std: exactly the mean
        eps = (by_job[1] - _tokens(mean)[1]) / 2.0
        assert not torch.equal(by_job[1], samples[1].x0) and 0.3 < float(eps.std()) < 2.0
    assert not torch.equal(*[{s.job: s.x0 for s in b}[1] for b, *_ in drawn])  # a new draw every step
    again = draw_batch(samples, None, 1, 0, fresh, one)
    assert torch.equal(again[0][1].x0, drawn[1][0][1].x0)  # a resumed run draws alike
    plain = draw_batch(samples, None, 1, 0, fixed, one)
    assert all(torch.equal(a, b) for a, b in zip(plain[1:], drawn[1][1:]))  # the flow's draws are unchanged
    assert all(torch.equal(s.x0, samples[s.job].x0) for s in plain[0])  # and without it, the stored draw

    with pytest.raises(ConfigError, match="train.fresh_posterior=true draws from the posterior"):
        _cfg("train.fresh_posterior=true")
    with pytest.raises(ConfigError, match="train.fresh_posterior=true is not read by objective.kind=flow_grpo"):
        _cfg("train.fresh_posterior=true", "generate.reencode=true", "objective.kind=flow_grpo",
             "objective.constraint=none", "objective.text_dropout=0", "generate.sde_noise=0.7", "reward.source=oracle")
