"""Rank and world helpers, and the process group's lifetime: the only place that reads rank variables.

Launched by `deepspeed` (or torchrun), ranks come from RANK / LOCAL_RANK / WORLD_SIZE; run plainly,
the process becomes rank 0 of a one-rank group on a free local port.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as tdist

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    backend: str | None  # None: no process group (library use outside `init_distributed`)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.backend is not None:
            tdist.barrier()

    def shard(self, items: list) -> list:
        """This rank's share, dealt round-robin (rank r takes items r, r+W, …)."""
        return items[self.rank::self.world_size]


def choose_backend(name: str) -> str:
    if name == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    return name


@contextlib.contextmanager
def init_distributed(backend: str = "auto", timeout_minutes: int = 60) -> Iterator[DistInfo]:
    """Join the process group when launched with several ranks, and always destroy it on exit."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if "MASTER_ADDR" not in os.environ:  # a plain `python` run: a one-rank group, so DeepSpeed runs unchanged
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", WORLD_SIZE="1",
                          LOCAL_RANK="0")
    chosen = choose_backend(backend)
    if chosen == "nccl":
        torch.cuda.set_device(local_rank)
    tdist.init_process_group(backend=chosen, timeout=datetime.timedelta(minutes=timeout_minutes))
    try:
        yield DistInfo(rank, world, local_rank, chosen)
        if world > 1:  # nobody tears down while a peer still works: gloo aborts a rank whose peer closed its sockets
            tdist.barrier()
    finally:
        gc.collect()  # pending gloo work objects hold tensors: free them while the group still exists
        tdist.destroy_process_group()


def exit_process(code: int = 0) -> None:
    """End a rank of a multi-process run without interpreter finalization.

    Finished ranks launched by torchrun occasionally died at exit with SIGABRT ("terminate called without an active
    exception": a C++ thread of the communication stack still joinable while static objects are destroyed), after
    every output had been written; the launcher then reports the whole run failed. Everything is written and
    flushed by the time this is called, so skipping finalization loses nothing.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def free_port() -> int:
    """A TCP port nothing listens on now: a run's rendezvous port, so that runs side by side do not collide."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def all_gather_objects(obj, info: DistInfo) -> list:
    """Every rank's `obj`, in rank order (a single-element list when not distributed)."""
    if info.backend is None:
        return [obj]
    out = [None] * info.world_size
    tdist.all_gather_object(out, obj)
    return out


def reported_by_main(check: Callable[[], T], info: DistInfo, wait_seconds: float = 300.0) -> T:
    """`check()` on every rank, for work every rank meets alike (the same files read on each): if it raises on any
    rank, rank 0 raises (its own error, or the first failing rank's, named) and the other ranks wait for the
    launcher to stop them once rank 0 exits. The console then shows one line, from rank 0, whichever rank got there
    first; a rank that failed and exited first would have the launcher kill rank 0 before it said anything."""
    try:
        out, error = check(), None
    except Exception as e:  # noqa: BLE001 - re-raised below, on rank 0 or after the wait
        out, error = None, e
    failures = [(rank, text) for rank, text in enumerate(
        all_gather_objects(None if error is None else f"{type(error).__name__}: {error}", info)) if text]
    if not failures:
        return out
    if not info.is_main:
        time.sleep(wait_seconds)  # the launcher ends this rank when rank 0 exits; on our own only if it does not
    if error is not None:
        raise error
    rank, text = failures[0]
    raise RuntimeError(f"rank {rank} failed: {text}")
