"""reported_by_main on a real two-rank gloo group: whichever rank fails, rank 0 raises and the other waits."""

import datetime
import socket
import time

import pytest
import torch.distributed as tdist
import torch.multiprocessing as mp

from srum.utils.artifacts import DamagedArtifact
from srum.utils.dist import DistInfo, reported_by_main

CASES = [(), (0, 1), (1,), (0,)]  # which ranks' checks fail
WAIT = 2.0


def _rank(rank: int, port: int, results) -> None:
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                             timeout=datetime.timedelta(seconds=60))
    info = DistInfo(rank, 2, rank, "gloo")
    try:
        for failing in CASES:
            def check() -> int:
                if rank in failing:
                    raise DamagedArtifact(f"file{rank}.safetensors: damaged")
                return 10 + rank

            started = time.monotonic()
            try:
                outcome = ("returned", reported_by_main(check, info, wait_seconds=WAIT))
            except Exception as e:  # noqa: BLE001 - what each rank raised is the result under test
                outcome = (type(e).__name__, str(e))
            results[(failing, rank)] = (*outcome, time.monotonic() - started >= WAIT)
            tdist.barrier()
    finally:
        tdist.destroy_process_group()


@pytest.fixture(scope="module")
def outcomes() -> dict:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_rank, args=(port, results), nprocs=2, join=True)
        return dict(results)


@pytest.mark.parametrize("failing, expected", [
    ((), {0: ("returned", 10, False), 1: ("returned", 11, False)}),
    # both meet the damage: rank 0 reports its own error at once; rank 1 raises its own only after the wait
    ((0, 1), {0: ("DamagedArtifact", "file0.safetensors: damaged", False),
              1: ("DamagedArtifact", "file1.safetensors: damaged", True)}),
    # only rank 1 does: rank 0 still reports, naming rank 1 and its error
    ((1,), {0: ("RuntimeError", "rank 1 failed: DamagedArtifact: file1.safetensors: damaged", False),
            1: ("DamagedArtifact", "file1.safetensors: damaged", True)}),
    # only rank 0 does: rank 1, whose own check passed, names rank 0's error after the wait
    ((0,), {0: ("DamagedArtifact", "file0.safetensors: damaged", False),
            1: ("RuntimeError", "rank 0 failed: DamagedArtifact: file0.safetensors: damaged", True)}),
])
def test_rank_zero_reports_whichever_rank_fails(outcomes, failing, expected):
    assert {rank: outcomes[(failing, rank)] for rank in (0, 1)} == expected


def test_single_process_raises_its_own_error():
    def check():
        raise DamagedArtifact("x.safetensors: damaged")

    with pytest.raises(DamagedArtifact, match="x.safetensors: damaged"):
        reported_by_main(check, DistInfo(0, 1, 0, None))
    assert reported_by_main(lambda: 3, DistInfo(0, 1, 0, None)) == 3
