"""Console logging for every rank: INFO on rank 0, WARNING and above elsewhere, one `key=value` line per event.

Called once by each `launch/` script; modules only do `logger = logging.getLogger(__name__)`. Below DEBUG, known
third-party noise (lines that repeat on every rank and need no action) is dropped; DEBUG (`--verbose`) shows it all.
"""

import logging
import os
import re
import sys
import warnings

_FORMAT = "time=%(asctime)s level=%(levelname)s rank={rank} logger=%(name)s %(message)s"
_DATEFMT = "%Y-%m-%dT%H:%M:%S"

# DeepSpeed's accelerator probe on a CPU machine and its scheduler's first-lr query during initialize.
_DEEPSPEED_NOISE = re.compile(r"Setting accelerator to CPU|Attempting to get learning rate from scheduler before")
# torch deprecations raised inside DeepSpeed's ZeRO code, not ours.
_TORCH_DEPRECATIONS = r"`torch\.distributed\.(all_gather_into_tensor|reduce_scatter_tensor)` is deprecated"


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _DEEPSPEED_NOISE.search(record.getMessage())


def setup_logging(rank: int | None = None, level: int | str = logging.INFO) -> None:
    """Configure the root logger (rank from $RANK when not given); calling it again replaces the previous setup
    instead of doubling lines."""
    if rank is None:
        rank = int(os.environ.get("RANK", "0"))
    if isinstance(level, str):
        number = logging.getLevelName(level.upper())  # the name's number, or a "Level x" string if unknown
        if not isinstance(number, int):
            raise ValueError(f"log level {level!r} is not one of DEBUG, INFO, WARNING, ERROR")
        level = number
    # Other ranks repeat rank 0's progress; keep only what needs attention from them.
    effective = level if rank == 0 else max(level, logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT.format(rank=rank), datefmt=_DATEFMT))
    logging.basicConfig(level=effective, handlers=[handler], force=True)
    deepspeed_logger = logging.getLogger("DeepSpeed")  # the logger DeepSpeed creates on import, made early
    for f in [f for f in deepspeed_logger.filters if isinstance(f, _DropNoise)]:
        deepspeed_logger.removeFilter(f)
    if level > logging.DEBUG:
        deepspeed_logger.addFilter(_DropNoise())
        warnings.filterwarnings("ignore", message=_TORCH_DEPRECATIONS, category=FutureWarning)


def log_resume(stage: str, done: int, total: int, unit: str) -> None:
    """One "resuming" line when a stage finds part of its work already done (a rerun after a stop)."""
    if 0 < done:
        logging.getLogger("srum.resume").info("resuming: stage=%s %d of %d %s done", stage, done, total, unit)
