"""Per-rank parameter memory under ZeRO-2 vs ZeRO-3 (2 CPU ranks, one SRUM training step each).

    python benchmarks/zero_memory.py [--checkpoint checkpoints/shapes-tiny]

Runs itself under `deepspeed --num_gpus 2` once per stage and prints the parameter values each rank
holds (ZeRO-3 partitions them; ZeRO-2 keeps a full copy per rank and partitions optimizer state only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def worker(checkpoint: str, stage: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from srum.config import load_config
    from srum.engine import TrainEngine
    from srum.models.bagel.unified import BagelUnified
    from srum.training import TrainSample, train_round
    from srum.utils.dist import all_gather_objects, init_distributed

    cfg = load_config(None, ["model.path=unused", "generate.prompts=shapes", "regions.proposer=world",
                             f"train.zero_stage={stage}", "train.max_steps=1", "train.micro_batch_size=2",
                             "train.backend=gloo", "train.dtype=float32", "train.save_every=0",
                             "log.progress=false", "train.freeze_und=false"])
    model = BagelUnified.from_pretrained(checkpoint)
    grid = model.latent_grid(64, 64)
    n, c = grid[0] * grid[1], model.config.patch_latent_dim
    samples = [TrainSample(i, "a red circle", torch.randn(n, c), torch.ones(n)) for i in range(4)]
    with init_distributed("gloo") as dist:
        engine = TrainEngine(model, cfg.train, dist, torch.float32)
        before = engine.partitioned_parameter_numel()
        train_round(engine.model_view(), engine, samples, grid, cfg, Path(os.environ["ZERO_BENCH_TMP"]), dist)
        per_rank = all_gather_objects({"param_values": before, "bytes": before * 4}, dist)
        if dist.is_main:
            print("RESULT " + json.dumps({"stage": stage, "ranks": per_rank,
                                          "total_params": sum(p.numel() for p in model.model.parameters())}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/shapes-tiny")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stage", type=int, default=2, help=argparse.SUPPRESS)
    args, _ = ap.parse_known_args([a for a in sys.argv[1:] if not a.startswith("--local_rank")])
    if args.worker:
        return worker(args.checkpoint, args.stage)
    import tempfile

    results = {}
    for stage in (2, 3):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = ["deepspeed", "--num_gpus", "2", "--master_port", str(29700 + stage), __file__, "--worker",
                   "--stage", str(stage), "--checkpoint", args.checkpoint]
            run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "ZERO_BENCH_TMP": tmp})
        line = next((x for x in run.stdout.splitlines() if "RESULT " in x), None)
        if line is None:
            sys.exit(f"stage {stage} failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
        results[stage] = json.loads(line.split("RESULT ", 1)[1])
    total = results[2]["total_params"]
    print(f"model parameters: {total:,} ({total * 4 / 2**20:.1f} MiB in fp32), 2 ranks, all parameters trainable")
    for stage, r in results.items():
        per = [x["param_values"] for x in r["ranks"]]
        print(f"ZeRO-{stage}: per-rank parameter values {per} = {max(per) * 4 / 2**20:.1f} MiB on the largest rank")
    r2 = max(x["param_values"] for x in results[2]["ranks"])
    r3 = max(x["param_values"] for x in results[3]["ranks"])
    print(f"ZeRO-3 / ZeRO-2 per-rank parameter memory: {r3 / r2:.2f}")


if __name__ == "__main__":
    main()
