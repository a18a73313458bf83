"""Helpers shared by tests in several folders (a uniquely named module: every folder's
conftest.py is a module called `conftest`, so importing helpers from it is ambiguous)."""

import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent

# Simulated CPU devices share 2 cores. With multi-threaded Eigen, a device's convolution
# finishes on the shared pool and its collectives then wait there; when every pool thread is
# parked in a rendezvous the other devices never arrive (seen as a hang, then XLA's abort).
# Single-threaded Eigen keeps each device on its own thread; the timeouts allow slow machines.
PATIENT_COLLECTIVES = ("--xla_cpu_multi_thread_eigen=false "
                       "--xla_cpu_collective_call_terminate_timeout_seconds=1200 "
                       "--xla_cpu_collective_timeout_seconds=1200")


def xla_flags(devices: int) -> str:
    """XLA_FLAGS for a (sub)process with `devices` simulated CPU devices."""
    return f"--xla_force_host_platform_device_count={devices} {PATIENT_COLLECTIVES}"


def tiny_config(data_dir: str, task: str = "t2v", **overrides):
    """configs/tiny.py for `task` reading `data_dir`, with dotted overrides (`train__steps=3`)."""
    from emu_jax.config import apply_override, load_config

    cfg = load_config(str(REPO / "configs" / "tiny.py") + ":" + task)
    cfg.data.data_dir = data_dir
    for key, value in overrides.items():
        apply_override(cfg, key.replace("__", "."), str(value))
    return cfg
