"""Shared layers against torch: the erf form of exact GELU, the norms and Dense on any leading shape."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
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


def _torch_value_and_grads(module, x_nc_last, weight_names):
    """torch module on channels-last x (moved to channels-first for norms): output and grads of sum(out * g)."""
    xt = torch.from_numpy(x_nc_last.copy()).requires_grad_(True)
    out = module(xt)
    g = torch.from_numpy(np.random.default_rng(1).normal(size=out.shape).astype(np.float32))
    (out * g).sum().backward()
    return out.detach().numpy(), g.numpy(), xt.grad.numpy(), [getattr(module, n).grad.numpy() for n in weight_names]


class _ChannelsLast(torch.nn.Module):  # GroupNorm on (B, ..., C) as torch's (B, C, ...)
    def __init__(self, norm):
        super().__init__()
        self.norm, self.weight, self.bias = norm, norm.weight, norm.bias

    def forward(self, x):
        return self.norm(x.movedim(-1, 1)).movedim(1, -1)


@pytest.mark.parametrize(
    "shape", [(8, 6, 6, 64), (1, 8, 6, 6, 64), (2, 3, 5, 5, 96), (1, 7, 32)], ids=["B8-4d", "B1-5d", "B2-5d", "B1-3d"]
)
def test_norms_and_dense_match_torch_on_any_leading_shape(shape):
    """GroupNorm (per-channel then per-group sums), LayerNorm and Dense (rows on the CPU) against torch:
    outputs and the gradients of input, scale / weight and bias, also for a size-1 batch axis."""
    from emu_jax.models.layers import Dense, GroupNorm, LayerNorm

    rng = np.random.default_rng(0)
    x = (rng.normal(size=shape) * 3 + 1).astype(np.float32)
    c = shape[-1]
    scale, bias = rng.normal(size=(c,)).astype(np.float32), rng.normal(size=(c,)).astype(np.float32)
    kernel = rng.normal(size=(c, 24)).astype(np.float32) / np.sqrt(c)
    cases = [
        (GroupNorm(32, 1e-6), {"scale": scale, "bias": bias}, _ChannelsLast(torch.nn.GroupNorm(32, c, eps=1e-6))),
        (LayerNorm(), {"scale": scale, "bias": bias}, torch.nn.LayerNorm(c)),
        (Dense(24), {"kernel": kernel, "bias": bias[:24]}, torch.nn.Linear(c, 24)),
    ]
    for ours, params, ref in cases:
        with torch.no_grad():
            ref.weight.copy_(torch.from_numpy(kernel.T.copy() if "kernel" in params else scale))
            ref.bias.copy_(torch.from_numpy(params["bias"]))
        want, g, want_dx, (want_dw, want_db) = _torch_value_and_grads(ref, x, ["weight", "bias"])
        p = {k: jnp.asarray(v) for k, v in params.items()}
        got = ours.apply({"params": p}, jnp.asarray(x))
        loss = lambda p, x, m=ours, g=g: jnp.sum(m.apply({"params": p}, x) * g)  # noqa: E731
        dp, dx = jax.grad(loss, argnums=(0, 1))(p, jnp.asarray(x))
        name = type(ours).__name__
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=2e-5, err_msg=name)
        np.testing.assert_allclose(np.asarray(dx), want_dx, rtol=1e-4, atol=2e-5, err_msg=name)
        dw = dp["kernel"].T if "kernel" in dp else dp["scale"]
        np.testing.assert_allclose(np.asarray(dw), want_dw, rtol=1e-4, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(np.asarray(dp["bias"]), want_db, rtol=1e-4, atol=1e-4, err_msg=name)
