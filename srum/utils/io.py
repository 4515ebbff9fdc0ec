"""Atomic file writes and run manifests.

Every file a run leaves behind (configs, manifests, records, checkpoints' metadata) is written through a temp
file in the same folder and `os.replace`, so a crash or a killed rank never leaves a half-written file that a
resume would then trust.
"""

import contextlib
import datetime
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_VERSIONED_PACKAGES = ("torch", "transformers", "diffusers", "deepspeed", "omegaconf")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` so readers see either the old file or the whole new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target: os.replace is only atomic within one filesystem.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; keep the old file's mode, or give new files the usual 0644.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def remove_stale_temps(folder: str | Path) -> int:
    """Delete the temp files (`.NAME.XXXX.tmp`) that a killed writer of ours left under `folder`; call it only while
    nothing writes there (at the start of a run). Returns how many were removed."""
    stale = [p for p in Path(folder).rglob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not supported everywhere (e.g. Windows), where it is skipped.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def inside(folder: str | Path, name: str, source: str | Path = "") -> Path:
    """`folder / name`, refusing a name read from data (a chunk or manifest) that leads outside `folder`.

    Raises ValueError naming the file that holds the name: a crafted run folder must not make a run read, link or
    overwrite files elsewhere (`../`, absolute paths, links out).
    """
    base = Path(folder).resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        where = f" (listed in {source})" if source else ""
        raise ValueError(f"file name {name!r}{where} points outside {folder}: refusing it; the file was edited or "
                         "crafted, regenerate that stage")
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """`atomic_write_bytes` for text."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """`atomic_write_bytes` for a JSON document (UTF-8, trailing newline)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def _package_version(name: str) -> str | None:
    # importlib.metadata, not `import`: importing deepspeed or torch just to read a version is slow and noisy.
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def run_manifest(cfg_dict: Mapping[str, Any]) -> dict[str, Any]:
    """What is needed to tell later which code, libraries and machine produced a run folder or checkpoint."""
    repo = Path(__file__).resolve().parent
    git_hash = _git(["rev-parse", "HEAD"], repo)
    status = _git(["status", "--porcelain", "--untracked-files=no"], repo) if git_hash else None
    return {
        "config": dict(cfg_dict),
        "versions": {"python": platform.python_version()} | {n: _package_version(n) for n in _VERSIONED_PACKAGES},
        "git_hash": git_hash,
        "git_dirty": None if status is None else bool(status),
        "hostname": socket.gethostname(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_manifest(
    run_dir: str | Path,
    cfg_dict: Mapping[str, Any],
    filename: str = "manifest.json",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write `run_manifest(cfg_dict)`, plus any `extra` keys (stage, round, counts), to run_dir/filename."""
    manifest = run_manifest(cfg_dict) | dict(extra or {})
    path = atomic_write_json(Path(run_dir) / filename, manifest)
    logger.info("event=manifest path=%s git_hash=%s", path, manifest["git_hash"])
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path` for a library that writes files itself; rename it over `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """`atomic_path` for a whole folder: yield an empty `.NAME.tmp` folder beside `path` and rename it to `path` on
    success, so `path` exists only complete. One left by a killed writer is removed first; `path` must not exist."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(path.parent)
