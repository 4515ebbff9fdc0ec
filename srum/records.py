"""What the generate and score stages write, in one place: chunk names, which rank owns a chunk, the typed rows of
each chunk, and their atomic writing and checked reading.

A round folder holds `generate/chunk_K.json` (one `GenerateRow` per image), `generate/chunk_K.safetensors` (the
images' clean latents) and `generate/images/JOB.png`, then `score/judge/chunk_K.json` (one `JudgeRow` per image) and
`score/reward/chunk_K.safetensors` (the kept images' reward maps on the latent grid, keyed by job). SDE rollouts
(`generate.sde_noise`) also keep each image's trajectory in the chunk's `.safetensors`, encoded images
(`generate.reencode`, renders) the autoencoder posterior their latent was drawn from. Chunk K holds
jobs [K·B, (K+1)·B); rank r owns the chunks K ≡ r (mod world size); a chunk is finished once its `.json` exists,
which is written after everything else of the chunk, so a killed run redoes only unfinished chunks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import save_file

from srum.models.interface import Posterior
from srum.utils.artifacts import REDO, DamagedArtifact, read_json, read_tensors
from srum.utils.dist import DistInfo
from srum.utils.io import atomic_path, atomic_write_json, inside


def chunk_stem(k: int) -> str:
    return f"chunk_{k:05d}"


def chunk_index(path: Path) -> int:
    """K of `chunk_K.json` / `chunk_K.safetensors`."""
    return int(Path(path).stem.split("_")[1])


def chunk_count(n_jobs: int, batch_size: int) -> int:
    return -(-n_jobs // batch_size)


def owned(chunks: list[int], dist: DistInfo) -> list[int]:
    """The chunks of `chunks` this rank draws and judges."""
    return [k for k in chunks if k % dist.world_size == dist.rank]


def _rows(cls, data: Any, path: Path, fix: str) -> list:
    names = {f.name for f in dataclasses.fields(cls)}
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    if not isinstance(data, list) or not all(isinstance(r, dict) and required <= set(r) for r in data):
        raise DamagedArtifact(f"{path}: expected a list of records with {sorted(required)}"
                              + f"; {fix}")
    return [cls(**{k: v for k, v in r.items() if k in names}) for r in data]


@dataclass(frozen=True)
class GenerateRow:
    """One image to draw (a job) and, once drawn, where it is."""

    job: int  # position in the round's job list: prompt item i, image j → i·images_per_prompt + j
    category: str
    index: int  # the prompt's position within its category
    prompt: str
    seed: int
    file: str = ""  # image path relative to the generate folder
    plan: str | None = None  # think mode's plan


@dataclass(frozen=True)
class JudgeRow:
    """One judged image: its regions and scores for its asked prompt, whether it is trained on (`kept`), the truth
    where known, and the prompt hindsight relabelled it with, if any."""

    job: int
    prompt: str
    file: str
    kept: bool
    global_score: float | None
    region_scores: list[float | None]
    boxes: list[list[int]]
    raw: list[str]
    parse_failures: int
    reward: float | None  # mean of the image's reward map for its asked prompt; None when dropped
    truth: float | None  # the prompt world's exact score, recorded beside the reward, never trained on
    trained_prompt: str | None = None  # hindsight relabelling's choice (reward.hindsight); None: the asked prompt
    trained_reward: float | None = None  # mean of the map it is trained with under trained_prompt


class GenerateFolder:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def marker(self, k: int) -> Path:
        return self.path / f"{chunk_stem(k)}.json"

    def latents_file(self, k: int) -> Path:
        return self.path / f"{chunk_stem(k)}.safetensors"

    @staticmethod
    def image_name(job: int) -> str:
        return f"images/{job:06d}.png"

    def finished(self) -> list[int]:
        return sorted(chunk_index(p) for p in self.path.glob("chunk_*.json"))

    def image_path(self, row: GenerateRow, source: Path | None = None) -> Path:
        """The row's image, refused if its name leaves the folder."""
        return inside(self.path, row.file, source or self.path)

    def write_chunk(self, k: int, rows: list[GenerateRow], images: list[Image.Image], latents: torch.Tensor,
                    trajectory: torch.Tensor | None = None, posterior: Posterior | None = None) -> None:
        """Images, then latents (and trajectories or the posteriors encoded latents were drawn from), then the
        marker, each atomically."""
        for row, image in zip(rows, images, strict=True):
            with atomic_path(self.path / row.file) as tmp:
                image.save(tmp, format="PNG")
        tensors = {"latents": latents.contiguous().float()}
        if trajectory is not None:
            tensors["trajectory"] = trajectory.contiguous().float()
        if posterior is not None:
            tensors["posterior_mean"] = posterior.mean.contiguous().float()
            tensors["posterior_std"] = posterior.std.contiguous().float()
        with atomic_path(self.latents_file(k)) as tmp:
            save_file(tensors, str(tmp))
        atomic_write_json(self.marker(k), [dataclasses.asdict(r) for r in rows])

    def read_rows(self, k: int, fix: str = REDO) -> list[GenerateRow]:
        return _rows(GenerateRow, read_json(self.marker(k), fix), self.marker(k), fix)

    def read_latents(self, k: int, n_rows: int, fix: str = REDO) -> torch.Tensor:
        return self._latents(read_tensors(self.latents_file(k), fix), k, n_rows, fix)

    def read_latents_and_trajectory(self, k: int, n_rows: int, fix: str = REDO) -> tuple[torch.Tensor, torch.Tensor]:
        """The chunk's latents and SDE trajectories (n_rows, grid points, n_tokens, token_dim), from one read of
        its file (the trajectories are most of it)."""
        tensors = read_tensors(self.latents_file(k), fix)
        trajectory = tensors.get("trajectory")
        if trajectory is None or trajectory.dim() != 4 or trajectory.shape[0] != n_rows:
            raise DamagedArtifact(f"{self.latents_file(k)}: no SDE trajectory for each of the {n_rows} records (drawn "
                                  f"without generate.sde_noise?); {fix}")
        return self._latents(tensors, k, n_rows, fix), trajectory

    def read_latents_and_posterior(self, k: int, n_rows: int, fix: str = REDO) -> tuple[torch.Tensor, Posterior]:
        """The chunk's latents and the posteriors they were drawn from (written where latents are encodings of the
        images: generate.reencode=true or generate.source=world), from one read of its file."""
        tensors = read_tensors(self.latents_file(k), fix)
        latents = self._latents(tensors, k, n_rows, fix)
        mean, std = tensors.get("posterior_mean"), tensors.get("posterior_std")
        if mean is None or std is None or mean.shape != latents.shape or std.shape != latents.shape:
            raise DamagedArtifact(f"{self.latents_file(k)}: no posterior like its latents for each of the {n_rows} "
                                  "records (drawn without generate.reencode=true, or before posteriors were kept); set "
                                  f"train.fresh_posterior=false, or {fix}")
        return latents, Posterior(mean, std)

    def all_rows_and_latents(self) -> tuple[list[GenerateRow], torch.Tensor]:
        """Every drawn image of every finished chunk, in chunk order, and their latents stacked alike (each chunk's
        rows read once)."""
        rows, latents = [], []
        for k in self.finished():
            chunk_rows = self.read_rows(k)
            latents.append(self.read_latents(k, len(chunk_rows)))
            rows += chunk_rows
        return rows, torch.cat(latents)

    def _latents(self, tensors: dict[str, torch.Tensor], k: int, n_rows: int, fix: str) -> torch.Tensor:
        latents = tensors.get("latents")
        if latents is None or latents.shape[0] != n_rows:
            raise DamagedArtifact(f"{self.latents_file(k)}: no latents for each of the {n_rows} records"
                                  + f"; {fix}")
        return latents


class ScoreFolder:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def judged(self, k: int) -> Path:
        return self.path / "judge" / f"{chunk_stem(k)}.json"

    def reward_file(self, k: int) -> Path:
        return self.path / "reward" / f"{chunk_stem(k)}.safetensors"

    def finished(self) -> list[int]:
        return sorted(chunk_index(p) for p in (self.path / "judge").glob("chunk_*.json"))

    def write_chunk(self, k: int, rows: list[JudgeRow], maps: dict[str, torch.Tensor]) -> None:
        """Reward maps first, then the judged rows (the chunk's done-marker), each atomically."""
        self.reward_file(k).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.reward_file(k)) as tmp:
            save_file(maps or {"_empty": torch.zeros(0)}, str(tmp))
        atomic_write_json(self.judged(k), [dataclasses.asdict(r) for r in rows])

    def read_rows(self, k: int, fix: str = REDO) -> list[JudgeRow]:
        return _rows(JudgeRow, read_json(self.judged(k), fix), self.judged(k), fix)

    def read_maps(self, k: int, fix: str = REDO) -> dict[str, torch.Tensor]:
        if not self.reward_file(k).is_file():
            raise FileNotFoundError(f"{self.reward_file(k)} missing: the judge stage did not finish for chunk {k}"
                                    + f"; {fix}")
        return read_tensors(self.reward_file(k), fix)

    def all_rows(self) -> list[JudgeRow]:
        """Every judged image of every finished chunk (all ranks, all invocations), in chunk order."""
        return [row for k in self.finished() for row in self.read_rows(k)]
