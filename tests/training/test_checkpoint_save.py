"""A run checkpoint's save on the CPU backend compiles nothing (Orbax's replica-parallel save compiled a
slice per device and array: 24 s for the tiny model's first save) and restores bit-identically."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from emu_jax.training.checkpoint import RunCheckpointer


def test_cpu_save_compiles_nothing_and_restores_exactly(tmp_path):
    mesh = jax.make_mesh((len(jax.devices()),), ("data",))
    replicated, split = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data"))
    state = {
        "kernel": jax.device_put(jnp.arange(3 * 5 * 16, dtype=jnp.float32).reshape(3, 5, 16), replicated),
        "bias": jax.device_put(jnp.linspace(-1, 1, 7, dtype=jnp.bfloat16), replicated),
        "rows": jax.device_put(jnp.arange(8 * 4, dtype=jnp.int32).reshape(8, 4), split),
    }
    assert len(jax.devices()) > 1  # replicas to split a save across (conftest: 8 simulated devices)
    compiles = []

    def listen(event, seconds, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(seconds)

    ckpt = RunCheckpointer(tmp_path)
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        ckpt.save(1, state, force=True)
        ckpt.wait()
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiles == []

    target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state)
    restored = RunCheckpointer(tmp_path).restore(1, target)
    for name, value in state.items():
        assert restored[name].dtype == value.dtype and restored[name].sharding == value.sharding, name
        np.testing.assert_array_equal(np.asarray(restored[name]), np.asarray(value))
