"""Checks on resume checkpoints before loading (srum/safe_checkpoint.py), on hand-made checkpoint folders."""

import pytest
import torch

from srum.safe_checkpoint import UnsafeCheckpointError, damage, safe_load


def _checkpoint(folder):
    folder.mkdir()
    torch.save({"module": {"w": torch.ones(3)}}, folder / "mp_rank_00_model_states.pt")
    for rank in (0, 1):
        torch.save({"state": torch.zeros(64)}, folder / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt")


def test_damage_looks_only_at_the_files_a_rank_reads(tmp_path):
    tag = tmp_path / "step0000004"
    _checkpoint(tag)
    assert damage(tag, 0) is None and damage(tag, 1) is None
    shard = tag / "zero_pp_rank_1_mp_rank_00_optim_states.pt"
    shard.write_bytes(shard.read_bytes()[:100])
    assert damage(tag, 0) is None  # rank 0 never reads rank 1's shard
    assert damage(tag, 1).startswith("zero_pp_rank_1_mp_rank_00_optim_states.pt: ")
    shard.unlink()
    assert damage(tag, 1) == f"{tag} has no optimizer shard for rank 1"
    assert damage(tmp_path / "step0000009", 0) == f"{tmp_path / 'step0000009'} is missing"


class _Call:
    def __reduce__(self):
        return (print, ("ran",))


def test_safe_load_reads_tensors_and_refuses_code(tmp_path):
    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    torch.save({"module": {"w": torch.ones(2)}, "step": 3}, good)
    assert torch.equal(safe_load(str(good))["module"]["w"], torch.ones(2))
    torch.save({"x": _Call()}, bad)
    with pytest.raises(UnsafeCheckpointError, match=r"bad\.pt: refused to load"):
        safe_load(str(bad))
