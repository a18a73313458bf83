"""`emu-video train --config configs/X.py[:arg] --workdir DIR [--config.a.b=v ...]`."""

from __future__ import annotations

import argparse
import logging

from emu_jax import compile_cache, distributed
from emu_jax.config import add_config_argument, config_from_args
from emu_jax.errors import UserError, as_user_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument(
        "--workdir", required=True, help="run folder: checkpoints, metrics.jsonl, tensorboard/; an existing run resumes"
    )
    parser.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="checkpoint and stop after this many steps of this invocation (resume later)",
    )
    parser.add_argument(
        "--rewrite-meta",
        action="store_true",
        help="rewrite an existing run's emu_jax.json from this config (its model and task "
        "must still match; e.g. to change the sampling defaults it records)",
    )
    distributed.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with as_user_error(f"--config {args.config}", types=(ValueError, TypeError, OSError, SyntaxError, NameError)):
        cfg = config_from_args(args.config, args.config_overrides)  # config errors before any jax work
    if args.stop_after is not None and args.stop_after < 1:
        raise UserError(f"--stop-after must be >= 1, got {args.stop_after}")
    distributed.initialize_from_args(args)
    compile_cache.enable()
    if cfg.train.task == "vae":
        from emu_jax.training.vae_train import train_vae as train
    else:
        from emu_jax.training.loop import train

        try:  # the per-shard batch split, named before the model is built or anything compiles
            _check_microbatches(cfg)
        except ValueError as e:
            raise UserError(str(e)) from None
    extra = {"rewrite_meta": args.rewrite_meta} if cfg.train.task != "vae" else {}
    summary = train(cfg, args.workdir, stop_after=args.stop_after, **extra)
    print({k: round(v, 6) if isinstance(v, float) else v for k, v in summary.items()})
    return 0


def _check_microbatches(cfg) -> None:
    import jax

    from emu_jax import sharding
    from emu_jax.training.step import check_microbatches

    shape = sharding.resolve_mesh_shape(dict(cfg.mesh.shape), jax.device_count())
    check_microbatches(cfg.train.batch_size, shape["data"] * shape["fsdp"], cfg.train.get("microbatches", 1))
