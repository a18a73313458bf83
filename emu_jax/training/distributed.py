"""Multi-process start-up on JAX's own runtime (TPU pods, SLURM, or explicit localhost)."""

from __future__ import annotations

import jax


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
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
