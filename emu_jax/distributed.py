"""Multi-process start-up on JAX's own runtime (TPU pods, SLURM, or explicit localhost)."""

from __future__ import annotations

import argparse

import jax


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The multi-process flags every pod-scale command takes (`emu-video train`, `emu-video sample`)."""
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() (auto-detected on TPU pods / SLURM; "
        "else set --coordinator, --num-processes, --process-id)",
    )
    parser.add_argument("--coordinator", default=None, help="host:port of process 0 (multi-process runs)")
    parser.add_argument("--num-processes", type=int, default=None)
    parser.add_argument("--process-id", type=int, default=None)


def initialize_from_args(args: argparse.Namespace) -> None:
    """`initialize` when the flags ask for several processes; nothing for a single-process run."""
    if args.distributed or args.coordinator:
        initialize(args.coordinator, args.num_processes, args.process_id)


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None) -> None:
    """`jax.distributed.initialize`: auto-detected on TPU / SLURM when no argument is given.

    On CPU the collectives go through gloo, so several processes on one host
    (tests, debugging) run the same sharded code as a pod.
    """
    if jax.config.jax_platforms in ("cpu",) or (jax.config.jax_platforms or "").startswith("cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator is None:
        jax.distributed.initialize()
        return
    if num_processes is None or process_id is None:
        raise ValueError("--coordinator needs --num-processes and --process-id")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"--process-id {process_id} must be in [0, {num_processes})")
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
