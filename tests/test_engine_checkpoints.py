"""Resume-checkpoint pruning (output.keep_checkpoints) on a hand-made checkpoint folder."""

from srum.engine import prune_checkpoints


def test_prune_keeps_the_newest_and_never_latest(tmp_path):
    for step in (5, 10, 15, 20):
        (tmp_path / f"step{step:07d}").mkdir()
    (tmp_path / "latest").write_text("step0000020")
    removed = prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == ["step0000005", "step0000010"]
    assert sorted(p.name for p in tmp_path.glob("step*")) == ["step0000015", "step0000020"]
    (tmp_path / "latest").write_text("step0000015")  # latest pointing at an older one is kept whatever `keep` says
    assert prune_checkpoints(tmp_path, keep=0) == [tmp_path / "step0000020"]
    assert [p.name for p in tmp_path.glob("step*")] == ["step0000015"]
