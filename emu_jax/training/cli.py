"""`emu-video train --config configs/X.py[:arg] --workdir DIR [--config.a.b=v ...]`."""

from __future__ import annotations

import argparse
import logging
import sys

from emu_jax.config import add_config_argument, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--workdir", required=True,
                        help="run folder: checkpoints, metrics.jsonl, tensorboard/; an existing run resumes")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="checkpoint and stop after this many steps of this invocation (resume later)")
    parser.add_argument("--distributed", action="store_true",
                        help="call jax.distributed.initialize() (auto-detected on TPU pods / SLURM; "
                             "else set --coordinator, --num-processes, --process-id)")
    parser.add_argument("--coordinator", default=None, help="host:port of process 0 (multi-process runs)")
    parser.add_argument("--num-processes", type=int, default=None)
    parser.add_argument("--process-id", type=int, default=None)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = config_from_args(args.config, args.config_overrides)  # config errors before any jax work
    if args.distributed or args.coordinator:
        from emu_jax.training.distributed import initialize
        initialize(args.coordinator, args.num_processes, args.process_id)
    if cfg.train.task == "vae":
        from emu_jax.training.vae_train import train_vae as train
    else:
        from emu_jax.training.loop import train
        try:  # the per-shard batch split, named before the model is built or anything compiles
            _check_microbatches(cfg)
        except ValueError as e:
            print(f"emu-video train: error: {e}", file=sys.stderr)
            return 2
    summary = train(cfg, args.workdir, stop_after=args.stop_after)
    print({k: round(v, 6) if isinstance(v, float) else v for k, v in summary.items()})
    return 0


def _check_microbatches(cfg) -> None:
    import jax

    from emu_jax import sharding
    from emu_jax.training.step import check_microbatches
    shape = sharding.resolve_mesh_shape(dict(cfg.mesh.shape), jax.device_count())
    check_microbatches(cfg.train.batch_size, shape["data"] * shape["fsdp"], cfg.train.get("microbatches", 1))
