"""Generate stage: reusing another run's samples (settings check, linking) and quarantining damaged finished chunks
(generate and judge)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from srum.config import config_to_dict, load_config
from srum.generate import check_reusable, reuse_generated
from srum.records import GenerateRow
from srum.utils.io import write_manifest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "shapes.yaml"


def _finished_generate_folder(path, cfg_dict, chunks: int = 2):
    """A generate folder as generate_stage and the pipeline leave it: images, latents, markers, manifest."""
    (path / "images").mkdir(parents=True)
    for k in range(chunks):
        records = []
        for j in range(2):
            name = f"images/{2 * k + j:06d}.png"
            (path / name).write_bytes(b"png %d" % (2 * k + j))
            records.append(dataclasses.asdict(GenerateRow(2 * k + j, "color", 2 * k + j, "a red circle", 0, name)))
        (path / f"chunk_{k:05d}.safetensors").write_bytes(b"latents %d" % k)
        (path / f"chunk_{k:05d}.json").write_text(json.dumps(records))
    write_manifest(path, cfg_dict, extra={"stage": "generate"})
    return path


def test_same_settings_are_reusable_and_differences_are_named(tmp_path):
    cfg = config_to_dict(load_config(RECIPE))
    source = _finished_generate_folder(tmp_path / "a", cfg)
    check_reusable(source, config_to_dict(load_config(RECIPE, [f"generate.reuse_from={source}",
                                                               "reward.binarize=true"])))  # after generation: fine
    other = config_to_dict(load_config(RECIPE, ["generate.seed=7", "generate.cfg_text_scale=2.0"]))
    with pytest.raises(ValueError, match=r"generate\.cfg_text_scale, generate\.seed differ"):
        check_reusable(source, other)
    with pytest.raises(ValueError, match=r"model\.path"):
        check_reusable(source, config_to_dict(load_config(RECIPE, ["model.path=elsewhere"])))
    with pytest.raises(FileNotFoundError, match="never finished"):
        check_reusable(tmp_path / "missing", cfg)


def test_reuse_links_every_chunk_and_keeps_existing_files(tmp_path):
    source = _finished_generate_folder(tmp_path / "a", config_to_dict(load_config(RECIPE)), chunks=3)
    out = tmp_path / "b"
    (out / "images").mkdir(parents=True)
    (out / "images" / "000000.png").write_bytes(b"mine")
    assert reuse_generated(source, out) == 3
    assert (out / "images" / "000000.png").read_bytes() == b"mine"  # never overwritten
    for k in range(3):
        assert (out / f"chunk_{k:05d}.json").read_text() == (source / f"chunk_{k:05d}.json").read_text()
        assert (out / f"chunk_{k:05d}.safetensors").read_bytes() == b"latents %d" % k
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{i:06d}.png" for i in range(6)]
    assert (out / "images" / "000005.png").read_bytes() == b"png 5"
    assert not (out / "manifest.json").exists()  # the reusing run writes its own after its generate stage


class _Painter:
    """A stand-in sampler: one flat image per prompt, coloured by its seed; counts the prompts it draws."""

    def __init__(self) -> None:
        self.drawn = 0

    def sample_images(self, prompts, seeds, height, width, think=False):
        import torch
        from PIL import Image

        from srum.models.interface import SampledImages

        self.drawn += len(prompts)
        images = [Image.new("RGB", (width, height), (s % 256, 0, 0)) for s in seeds]
        return SampledImages(images, torch.zeros(len(prompts), 4, 2, 2), torch.zeros(len(prompts), 4, 4), list(seeds))


def test_a_damaged_finished_chunk_is_quarantined_and_redrawn(tmp_path):
    from srum.config import GenerateConfig
    from srum.evaluation.benchmarks import PromptItem
    from srum.generate import generate_stage
    from srum.utils.artifacts import quarantined
    from srum.utils.dist import DistInfo

    items = [PromptItem("color", i, f"prompt {i}") for i in range(4)]
    cfg = GenerateConfig(prompts="shapes", resolution=16, batch_size=2, seed=5)
    dist = DistInfo(0, 1, 0, None)
    painter = _Painter()
    assert generate_stage(painter, items, cfg, tmp_path, dist, progress=False) == 2 and painter.drawn == 4
    good = (tmp_path / "images" / "000000.png").read_bytes()
    png = tmp_path / "images" / "000003.png"
    png.write_bytes(png.read_bytes()[:30])  # chunk 1 damaged after it was marked done
    assert generate_stage(painter, items, cfg, tmp_path, dist, progress=False) == 1 and painter.drawn == 6
    assert quarantined(tmp_path) == 1
    assert sorted(p.name for p in (tmp_path / "quarantine").iterdir()) == [
        "000002.png", "000003.png", "chunk_00001.json", "chunk_00001.safetensors"]
    assert png.stat().st_size > 30 and (tmp_path / "images" / "000000.png").read_bytes() == good  # chunk 0 kept
    assert generate_stage(painter, items, cfg, tmp_path, dist, progress=False) == 0  # intact now: nothing redone


class _FlatJudge:
    def __init__(self) -> None:
        self.judged = 0

    def judge(self, images, prompts, regions):
        from srum.rewards.judge import Judgement

        self.judged += len(images)
        return [Judgement(0.5, [], [], []) for _ in images]


class _NoRegions:
    def propose(self, images):
        return [[] for _ in images]


def test_a_damaged_judgement_is_quarantined_and_judged_again(tmp_path):
    from srum.config import GenerateConfig, RewardConfig
    from srum.evaluation.benchmarks import PromptItem
    from srum.generate import generate_stage
    from srum.score import score_stage
    from srum.utils.artifacts import quarantined
    from srum.utils.dist import DistInfo

    dist = DistInfo(0, 1, 0, None)
    items = [PromptItem("color", i, f"prompt {i}") for i in range(4)]
    generate_stage(_Painter(), items, GenerateConfig(prompts="shapes", resolution=16, batch_size=2), tmp_path / "g",
                   dist, progress=False)
    judge = _FlatJudge()
    score_stage(judge, _NoRegions(), RewardConfig(), tmp_path / "g", tmp_path / "s", (1, 1), dist, progress=False)
    assert judge.judged == 4
    reward = tmp_path / "s" / "reward" / "chunk_00000.safetensors"
    reward.write_bytes(reward.read_bytes()[:10])
    score_stage(judge, _NoRegions(), RewardConfig(), tmp_path / "g", tmp_path / "s", (1, 1), dist, progress=False)
    assert judge.judged == 6 and quarantined(tmp_path / "s") == 1  # chunk 0 judged again, chunk 1 kept
    assert sorted(p.name for p in (tmp_path / "s" / "quarantine").iterdir()) == [
        "chunk_00000.json", "chunk_00000.safetensors"]


def test_reencode_trains_on_the_autoencoder_encoding_of_each_saved_png(tiny_checkpoint, tmp_path):
    """generate.reencode=true: each chunk's latents are the model's encoding of the PNG written beside them (seeded
    by the image's seed, so the same file gives the same latent), not the sampler's own final latents; the
    posterior they were drawn from is kept beside them (train.fresh_posterior draws from it anew)."""
    import torch
    from PIL import Image

    from srum.config import GenerateConfig
    from srum.evaluation.benchmarks import PromptItem
    from srum.generate import generate_stage
    from srum.models.bagel.images import image_to_tensor
    from srum.models.bagel.unified import BagelUnified
    from srum.records import GenerateFolder
    from srum.utils.artifacts import DamagedArtifact
    from srum.utils.dist import DistInfo

    model = BagelUnified.from_pretrained(tiny_checkpoint)
    model.set_sampling(num_timesteps=3)
    items = [PromptItem("color", i, p) for i, p in enumerate(["a red circle", "a blue square"])]
    dist = DistInfo(0, 1, 0, None)
    for reencode in (False, True):
        cfg = GenerateConfig(prompts="shapes", resolution=16, batch_size=2, seed=3, think=False, reencode=reencode)
        generate_stage(model, items, cfg, tmp_path / str(reencode), dist, progress=False)
    raw, enc = GenerateFolder(tmp_path / "False"), GenerateFolder(tmp_path / "True")
    rows = enc.read_rows(0)
    assert [r.seed for r in rows] == [3, 4] and rows == raw.read_rows(0)
    pngs = [Image.open(enc.path / r.file).convert("RGB") for r in rows]
    assert all((enc.path / r.file).read_bytes() == (raw.path / r.file).read_bytes() for r in rows)  # same pictures
    expected = model.encode_images(pngs, [r.seed for r in rows])
    latents, posterior = enc.read_latents_and_posterior(0, 2)
    assert torch.equal(latents, expected) and torch.equal(posterior.sample([r.seed for r in rows]), expected)
    # the posterior kept beside them is the autoencoder's, and its seeded draw is the one BAGEL's encode makes
    x = torch.stack([image_to_tensor(p) for p in pngs])
    assert torch.allclose(posterior.mean, model.vae.encode(x, sample=False), atol=1e-6)
    assert float(posterior.std.min()) > 0
    for i, r in enumerate(rows):
        drawn = model.vae.encode(x[i:i + 1], generator=torch.Generator().manual_seed(r.seed))[0]
        assert torch.allclose(expected[i], drawn, atol=1e-5)
    sampled = raw.read_latents(0, 2)
    assert sampled.shape == expected.shape and not torch.allclose(sampled, expected, atol=1e-2)
    with pytest.raises(DamagedArtifact, match="no posterior like its latents .* set train.fresh_posterior=false"):
        raw.read_latents_and_posterior(0, 2)  # the sampler's latents have none
