"""Batched feature extraction: data-sharded fixed-shape batches, the padded last batch's outputs dropped."""

import jax
import numpy as np
import pytest


def _net(params, x):
    return jax.numpy.tanh(x.reshape(x.shape[0], -1) @ params)


def test_batches_are_sharded_padded_and_trimmed():
    from emu_jax.metrics.batching import BatchedFeatures

    rng = np.random.default_rng(0)
    params = rng.normal(size=(12, 5)).astype(np.float32)
    items = rng.normal(size=(7, 2, 2, 3)).astype(np.float32)
    run = BatchedFeatures(_net, params, batch_size=4)
    assert run.mesh.devices.size == min(4, len(jax.devices()))
    got = run(items)
    assert got.shape == (7, 5)
    np.testing.assert_allclose(got, np.tanh(items.reshape(7, -1) @ params), rtol=1e-5, atol=1e-6)
    assert run._fn is BatchedFeatures(_net, params, batch_size=4)._fn  # one executable per network and mesh


def test_rejects_bad_batch_size_and_empty_input():
    from emu_jax.metrics.batching import BatchedFeatures

    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        BatchedFeatures(_net, np.zeros((12, 5), np.float32), batch_size=0)
    with pytest.raises(ValueError, match="no items"):
        BatchedFeatures(_net, np.zeros((12, 5), np.float32), batch_size=2)(np.zeros((0, 2, 2, 3), np.float32))
