"""Run a feature network over many items in fixed-shape jitted batches, data-sharded over a device mesh.

Like sampling: the batch is split over the mesh's data axes, parameters are
replicated, and every call sees the same batch shape (the last batch is
padded by repeating its final item and the padding's outputs dropped), so a
network compiles once per input size.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Hashable, Sequence

import jax
import numpy as np

from emu_jax import sharding


def data_mesh(batch_size: int, devices: Sequence[Any] | None = None) -> jax.sharding.Mesh:
    """A ('data', 'fsdp', 'tensor') mesh over the most devices whose count divides the batch."""
    devices = list(jax.devices() if devices is None else devices)
    d = max(n for n in range(1, len(devices) + 1) if batch_size % n == 0)
    return sharding.make_mesh({"data": d, "fsdp": 1, "tensor": 1}, devices[:d])


@functools.cache
def _jitted(fn: Callable, static: Hashable, mesh: jax.sharding.Mesh):
    """One jitted function per (network, config, mesh), so real and fake sets share their executables."""
    return jax.jit(functools.partial(fn, static) if static is not None else fn, out_shardings=sharding.replicated(mesh))


class BatchedFeatures:
    """`BatchedFeatures(fn, params, batch_size)(items_N...) -> (N, D)` numpy features.

    fn(params, batch), or fn(static, params, batch) when a hashable `static` (a config) is given.
    """

    def __init__(
        self,
        fn: Callable[..., jax.Array],
        params: Any,
        batch_size: int = 8,
        devices: Sequence[Any] | None = None,
        static: Hashable = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.mesh = data_mesh(batch_size, devices)
        self.params = jax.device_put(params, sharding.replicated(self.mesh))
        self._fn = _jitted(fn, static, self.mesh)

    def __call__(self, items: np.ndarray) -> np.ndarray:
        items = np.asarray(items)
        if len(items) == 0:
            raise ValueError("no items to compute features of")
        out = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            n = len(chunk)
            if n < self.batch_size:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch_size - n, axis=0)])
            x = jax.device_put(chunk, sharding.batch_sharding(self.mesh, chunk.ndim))
            out.append(np.asarray(self._fn(self.params, x))[:n])
        return np.concatenate(out).astype(np.float32)
