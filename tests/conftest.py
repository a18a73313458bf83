"""Test session setup: CPU only, 8 simulated devices, set before jax is imported."""

import os

from emu_test_utils import PATIENT_COLLECTIVES, xla_flags

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Eight simulated CPU devices let sharding tests run the same code as a pod.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + xla_flags(8)).strip()
elif "collective_call_terminate" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " " + PATIENT_COLLECTIVES
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Subprocess tests (resume after kill -9, multi-process) reuse compiled steps through the cache.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", "/tmp/emu_jax_test_jax_cache")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_shapes_dir(tmp_path_factory):
    """A 32 px moving-shapes TFDS dataset (16 frames at 8 fps; 24 train / 8 test clips)."""
    from emu_jax.data import builders
    from emu_jax.demo.dataset import MovingShapes

    data_dir = tmp_path_factory.mktemp("shapes_data")
    builders.prepare(
        MovingShapes(resolution=32, num_frames=16, fps=8.0, num_train=24, num_test=8, data_dir=str(data_dir))
    )
    return str(data_dir)
