"""Shared layers: the erf form of exact GELU used by the GEGLU feed-forward."""

import jax
import jax.numpy as jnp
import numpy as np
import torch

from emu_jax.models.layers import gelu_erf


def test_gelu_erf_matches_torch_and_jax_exact_gelu():
    x = np.concatenate([np.linspace(-12, 12, 4001), np.random.default_rng(0).normal(size=4000) * 3]).astype(np.float32)
    got = np.asarray(gelu_erf(jnp.asarray(x)))
    want = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()  # torch's default: exact, erf form
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, np.asarray(jax.nn.gelu(jnp.asarray(x), approximate=False)), rtol=1e-5, atol=1e-6)
    xt = torch.from_numpy(x).requires_grad_(True)
    torch.nn.functional.gelu(xt).sum().backward()
    grad = np.asarray(jax.grad(lambda v: jnp.sum(gelu_erf(v)))(jnp.asarray(x)))
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
