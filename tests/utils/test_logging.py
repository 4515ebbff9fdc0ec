"""Rank-aware logging setup (srum/utils/logging.py)."""

import logging

import pytest

from srum.utils.logging import setup_logging


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_rank0_info_other_ranks_warning(restore_root_logger, capsys):
    log = logging.getLogger("srum.test")
    setup_logging(rank=0, level="info")
    log.info("round=1 stage=judge images=3")
    setup_logging(rank=1)  # replaces the rank-0 handler instead of adding a second one
    log.info("hidden=1")
    log.warning("shown=1")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert "level=INFO rank=0 logger=srum.test round=1 stage=judge images=3" in lines[0]
    assert lines[0].startswith("time=")
    assert "level=WARNING rank=1 logger=srum.test shown=1" in lines[1]


def test_bad_level_named(restore_root_logger):
    with pytest.raises(ValueError, match="log level 'loud'"):
        setup_logging(0, "loud")
