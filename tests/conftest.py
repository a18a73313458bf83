"""Test session setup: CPU only, 8 simulated devices, set before jax is imported."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
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


# Eight simulated CPU devices let sharding tests run the same code as a pod.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + xla_flags(8)).strip()
elif "collective_call_terminate" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " " + PATIENT_COLLECTIVES
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Subprocess tests (resume after kill -9, multi-process) reuse compiled steps through the cache.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", "/tmp/emu_jax_test_jax_cache")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_shapes_dir(tmp_path_factory):
    """A 32 px moving-shapes TFDS dataset (16 frames at 8 fps; 24 train / 8 test clips)."""
    from emu_jax.data import builders

    data_dir = tmp_path_factory.mktemp("shapes_data")
    builders.prepare(builders.MovingShapes(resolution=32, num_frames=16, fps=8.0, num_train=24, num_test=8,
                                           data_dir=str(data_dir)))
    return str(data_dir)


def tiny_config(data_dir: str, task: str = "t2v", **overrides):
    """configs/tiny.py for `task` reading `data_dir`, with dotted overrides (`train__steps=3`)."""
    from emu_jax.config import apply_override, load_config

    cfg = load_config(str(REPO / "configs" / "tiny.py") + ":" + task)
    cfg.data.data_dir = data_dir
    for key, value in overrides.items():
        apply_override(cfg, key.replace("__", "."), str(value))
    return cfg
