"""A few SRUM training steps of a tiny random BAGEL under DeepSpeed, for the 2-rank integration tests.

    deepspeed --num_gpus 2 tests/integration/ds_train.py OUT_DIR ZERO_STAGE STEPS [CRASH_AT_STEP] [key=value ...]

Writes OUT_DIR/losses.json (rank 0's per-step metrics) and OUT_DIR/final.safetensors (gathered weights).
With CRASH_AT_STEP the process dies right after logging that step, as a kill would (resume test); key=value
arguments override the config (fault tests: e.g. train.lr=1e6).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from srum.config import load_config  # noqa: E402
from srum.engine import TrainEngine  # noqa: E402
from srum.models.bagel.config import BagelConfig  # noqa: E402
from srum.models.bagel.model import Bagel  # noqa: E402
from srum.models.bagel.unified import BagelUnified  # noqa: E402
from srum.models.bagel.vae import BagelVAE  # noqa: E402
from srum.training import TrainSample, train_round  # noqa: E402
from srum.utils.dist import init_distributed  # noqa: E402
from srum.worlds.shapes.model import shapes_tokenizer  # noqa: E402


class Recorder:
    """Collects the scalars train_round logs (a SummaryWriter stand-in), optionally dying at a step."""

    def __init__(self, crash_at: int | None) -> None:
        self.rows: dict[int, dict[str, float]] = {}
        self.crash_at = crash_at

    def add_scalar(self, name: str, value: float, step: int) -> None:
        self.rows.setdefault(step, {})[name.split("/")[-1]] = value
        if step == self.crash_at and name == "train/weight_mean":
            os._exit(17)  # no cleanup, like kill -9


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--local_rank")]  # appended by the deepspeed launcher
    overrides = [a for a in args if "=" in a]
    args = [a for a in args if "=" not in a]
    out, stage, steps = Path(args[0]), int(args[1]), int(args[2])
    crash_at = int(args[3]) if len(args) > 3 else None
    cfg = load_config(None, ["model.path=unused", "generate.prompts=shapes", "regions.proposer=world",
                             f"train.zero_stage={stage}", f"train.max_steps={steps}", "train.micro_batch_size=2",
                             "train.backend=gloo", "train.dtype=float32", "train.save_every=2", "train.lr=1e-3",
                             "train.warmup_steps=1", "train.freeze_und=true", "log.every=1", "log.progress=false",
                             "objective.constraint=anchor", "objective.anchor_weight=0.5", *overrides])
    torch.manual_seed(0)
    config = BagelConfig.tiny()
    model, vae = Bagel(config), BagelVAE(config.vae_config)
    tok = shapes_tokenizer(config)
    g = torch.Generator().manual_seed(1)
    samples = [TrainSample(i, ["a red circle", "a blue square"][i % 2], torch.randn(4, 64, generator=g),
                           torch.rand(4, generator=g)) for i in range(8)]
    with init_distributed("gloo") as dist:
        unified = BagelUnified(model, vae, tok)
        engine = TrainEngine(unified, cfg.train, dist, torch.float32)
        recorder = Recorder(crash_at) if dist.is_main else None
        train_round(engine.model_view(), engine, samples, (2, 2), cfg, out / "checkpoints", dist, writer=recorder)
        state = engine.full_state_dict()
        if dist.is_main:
            (out / "losses.json").write_text(json.dumps(recorder.rows))
            save_file({k: v.contiguous() for k, v in state.items()}, str(out / "final.safetensors"))
            (out / "params.json").write_text(json.dumps({"rank_numel": engine.partitioned_parameter_numel()}))


if __name__ == "__main__":
    main()
