"""Console logging for every rank: INFO on rank 0, WARNING and above elsewhere, one `key=value` line per event.

Called once by each `launch/` script; modules only do `logger = logging.getLogger(__name__)`.
"""

import logging
import sys

_FORMAT = "time=%(asctime)s level=%(levelname)s rank={rank} logger=%(name)s %(message)s"
_DATEFMT = "%Y-%m-%dT%H:%M:%S"


def setup_logging(rank: int = 0, level: int | str = logging.INFO) -> None:
    """Configure the root logger; calling it again replaces the previous setup instead of doubling lines."""
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
