"""Atomic writes and run manifests (srum/utils/io.py)."""

import json
import os
import stat

import pytest

from srum.utils.io import (atomic_folder, atomic_write_bytes, atomic_write_json, atomic_write_text, run_manifest,
                           write_manifest)


def test_atomic_write_replaces_content_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert os.listdir(path.parent) == ["out.txt"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's private 0600


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "out.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": object()})  # fails while serialising, before any file is touched
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]  # fails inside the temp-file write
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_write_json_and_bytes(tmp_path):
    atomic_write_json(tmp_path / "x.json", {"β": [1, 2]})
    assert (tmp_path / "x.json").read_text(encoding="utf-8") == '{\n  "β": [\n    1,\n    2\n  ]\n}\n'
    atomic_write_bytes(tmp_path / "x.bin", b"\x00\x01")
    assert (tmp_path / "x.bin").read_bytes() == b"\x00\x01"


def test_run_manifest_keys():
    m = run_manifest({"train": {"lr": 1e-5}})
    assert set(m) == {"config", "versions", "git_hash", "git_dirty", "hostname", "time"}
    assert m["config"] == {"train": {"lr": 1e-5}}
    assert set(m["versions"]) >= {"python", "torch", "transformers", "diffusers", "deepspeed"}
    assert m["versions"]["torch"]  # installed in every environment that runs the tests
    assert m["git_hash"] is None or len(m["git_hash"]) == 40
    assert m["time"].endswith("+00:00")


def test_write_manifest(tmp_path):
    path = write_manifest(tmp_path / "run", {"a": 1}, extra={"stage": "judge"})
    data = json.loads(path.read_text())
    assert path.name == "manifest.json"
    assert data["config"] == {"a": 1} and data["stage"] == "judge"


def test_inside_refuses_names_that_leave_the_folder(tmp_path):
    from srum.utils.io import inside

    assert inside(tmp_path, "images/000001.png") == (tmp_path / "images" / "000001.png").resolve()
    for bad in ("../secret", "/etc/passwd", "images/../../x"):
        with pytest.raises(ValueError, match="points outside"):
            inside(tmp_path, bad, "chunk_00000.json")
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(ValueError, match="chunk_00000.json"):
        inside(tmp_path, "link/passwd", "chunk_00000.json")


def test_remove_stale_temps_deletes_only_our_temp_files(tmp_path):
    from srum.utils.io import remove_stale_temps

    (tmp_path / "report").mkdir()
    (tmp_path / "report" / ".000001_boxes.png.k3j2.tmp").write_bytes(b"half")
    (tmp_path / ".manifest.json.ab12.tmp").write_text("{")
    (tmp_path / "report" / "000001_boxes.png").write_bytes(b"whole")
    (tmp_path / "notes.tmp").write_text("a user's file, not hidden: kept")
    assert remove_stale_temps(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["000001_boxes.png", "notes.tmp"]


def test_atomic_folder_appears_only_complete(tmp_path):
    out = tmp_path / "ckpt"
    (tmp_path / ".ckpt.tmp").mkdir()  # left by a killed writer
    (tmp_path / ".ckpt.tmp" / "stale.bin").write_bytes(b"old")
    with atomic_folder(out) as tmp:
        assert not out.exists() and list(tmp.iterdir()) == []
        (tmp / "a.txt").write_text("a")
    assert (out / "a.txt").read_text() == "a" and not (tmp_path / ".ckpt.tmp").exists()

    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "broken") as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise RuntimeError("writer died")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
