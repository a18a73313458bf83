"""Per-layer remat: same params, output and gradients as no remat; 'offload' refused on a CPU mesh."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax import config as config_lib
from emu_jax.models import UNet, UNetConfig
from emu_jax.models.unet import abstract_params, init_params


def _micro():
    """One level, 16 channels, temporal cross-attention on: every wrapped layer kind at the smallest size."""
    cfg = UNetConfig.from_dict(config_lib.load_config("models/unet_tiny").to_dict())
    return cfg.replace(channel_mult=(1,), attention_resolutions=(1,), model_channels=16, temporal_cross_attention=True)


def test_layer_scope_keeps_the_param_tree():
    cfg = _micro()
    shapes = lambda c: jax.tree.map(lambda v: v.shape, abstract_params(c))  # noqa: E731
    assert shapes(cfg.replace(remat="full", remat_scope="layer")) == shapes(cfg)


@pytest.mark.slow  # three gradient compiles of a one-level U-Net: minutes on the shared 2-core host
def test_layer_scope_same_output_and_grad():
    cfg = _micro()
    params = jax.tree.map(lambda v: v + 0.01, init_params(cfg, jax.random.key(3)))  # grads reach temporal too
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(1, 2, 4, 4, cfg.in_channels)), jnp.float32)
    t = jnp.array([7])
    ctx = (jnp.asarray(rng.normal(size=(1, 5, cfg.context_dims[0])), jnp.float32),)

    def grad_fn(c):
        return jax.jit(jax.value_and_grad(lambda p: jnp.mean(UNet(c).apply({"params": p}, x, t, ctx) ** 2)))

    def checkpoints(c):
        jaxpr = str(jax.make_jaxpr(lambda p: UNet(c).apply({"params": p}, x, t, ctx))(params))
        return len(re.findall(r"\b(?:checkpoint|remat2?)\[", jaxpr))  # the primitive's name varies by jax version

    # One level: 5 resnets (1 down, 2 mid, 2 up) and 4 attention places (1 down, 1 mid, 2 up), each a
    # spatial and a temporal block of one transformer layer (self-attention, cross-attention, MLP).
    assert checkpoints(cfg.replace(remat="full")) == 5 + 4 * 2
    assert checkpoints(cfg.replace(remat="full", remat_scope="layer")) == 5 + 8 * 3
    l0, g0 = grad_fn(cfg)(params)
    for remat in ("full", "save_dots_no_batch"):
        c = cfg.replace(remat=remat, remat_scope="layer")
        l1, g1 = grad_fn(c)(params)
        np.testing.assert_allclose(l1, l0, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_bad_scope_and_offload_on_cpu_are_refused(tiny_shapes_dir):
    with pytest.raises(ValueError, match=r"remat_scope='cell' not in \('block', 'layer'\)"):
        _micro().replace(remat_scope="cell")
    from emu_jax import sharding
    from emu_jax.training import loop
    from emu_test_utils import tiny_config

    cfg = tiny_config(tiny_shapes_dir, "t2v", model__unet__remat="offload")
    with pytest.raises(ValueError, match="remat='offload' .* needs a TPU or GPU"):
        loop.make_run(cfg, sharding.make_mesh({"data": 1}, jax.devices()[:1]))
