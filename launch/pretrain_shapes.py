"""Pretrain the tiny ShapesWorld BAGEL (autoencoder, then joint understanding + generation). Resumable.

    python launch/pretrain_shapes.py recipes/pretrain_shapes.yaml [key=value ...]
"""

from __future__ import annotations

import os
import sys

# launch/srum.py would shadow the `srum` package for scripts run from this folder: drop the folder from the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import shutil
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from srum.config import config_to_dict, load_config, save_config
from srum.utils.io import write_manifest
from srum.utils.logging import setup_logging
from srum.worlds.shapes.pretrain import PretrainConfig, pretrain


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cfg = load_config(sys.argv[1], sys.argv[2:], schema=PretrainConfig)
    setup_logging()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    write_manifest(out, config_to_dict(cfg))
    with SummaryWriter(str(out / "tensorboard")) as writer:
        folder = pretrain(cfg, writer)
    shutil.copy(out / "config.yaml", folder / "pretrain_config.yaml")


if __name__ == "__main__":
    main()
