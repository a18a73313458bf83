"""Test session setup: CPU only, 8 simulated devices, set before jax is imported."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Eight simulated CPU devices let sharding tests run the same code as a pod.
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
