"""Sharded U-Net forward on 8 simulated CPU devices equals the single-device forward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax import sharding
from emu_jax.models import UNet, UNetConfig
from emu_jax.models.unet import abstract_params, init_params

CFG = UNetConfig(
    in_channels=4,
    cond_channels=5,
    out_channels=4,
    model_channels=32,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(2,),
    num_heads=None,
    head_dim=8,
    context_dims=(16, 24),
    transformer_layers=2,
    norm_groups=8,
)  # two text encoders


@pytest.fixture(scope="module")
def devices8():
    if len(jax.devices()) < 8:
        pytest.skip("needs 8 devices (tests/conftest.py sets --xla_force_host_platform_device_count=8)")


@pytest.fixture(scope="module")
def setup(devices8):
    params = init_params(CFG, jax.random.key(0))
    # Non-trivial temporal layers, so sharding of the temporal path is checked too.
    params = jax.tree_util.tree_map_with_path(
        lambda p, v: v + 0.02 if "temporal_attentions" in jax.tree_util.keystr(p) else v, params
    )
    rng = np.random.default_rng(0)
    b, t = 8, 2
    inputs = dict(
        x=jnp.asarray(rng.normal(size=(b, t, 8, 8, 4)), jnp.float32),
        t=jnp.arange(b) * 100,
        contexts=(
            jnp.asarray(rng.normal(size=(b, 3, 16)), jnp.float32),
            jnp.asarray(rng.normal(size=(b, 5, 24)), jnp.float32),
        ),
        cond=jnp.asarray(rng.normal(size=(b, t, 8, 8, 5)), jnp.float32),
    )

    def fwd(p, inp):
        return UNet(CFG).apply({"params": p}, inp["x"], inp["t"], inp["contexts"], cond=inp["cond"])

    expected = jax.jit(fwd)(params, inputs)
    return params, inputs, fwd, expected


@pytest.mark.slow  # ~16 s: a sharded U-Net forward compiled for two meshes
@pytest.mark.parametrize("shape", [{"data": 2, "fsdp": 4, "tensor": 1}, {"data": 2, "fsdp": 2, "tensor": 2}])
def test_sharded_forward_matches_single_device(setup, shape):
    params, inputs, fwd, expected = setup
    mesh = sharding.make_mesh(shape)
    p_shard = sharding.params_shardings(abstract_params(CFG), mesh)
    assert jax.tree.structure(p_shard) == jax.tree.structure(params)
    in_shard = jax.tree.map(lambda a: sharding.batch_sharding(mesh, a.ndim), inputs)
    with sharding.use_mesh(mesh):
        sharded_params = jax.device_put(params, p_shard)
        sharded_inputs = jax.device_put(inputs, in_shard)
        out = jax.jit(fwd, in_shardings=(p_shard, in_shard))(sharded_params, sharded_inputs)
    # The FSDP / tensor rules really split some params.
    kernel = sharded_params["mid_block"]["attentions_0"]["transformer_blocks_0"]["ff"]["net_0"]["proj"]["kernel"]
    assert len(kernel.sharding.device_set) == 8 and kernel.addressable_shards[0].data.shape != kernel.shape
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=1e-4, atol=1e-4)


def test_sharded_init_places_params_in_shards(devices8):
    micro = CFG.replace(channel_mult=(1,), attention_resolutions=(1,), context_dims=(16,), transformer_layers=1)
    mesh = sharding.make_mesh({"data": 2, "fsdp": 4, "tensor": 1})
    p_shard = sharding.params_shardings(abstract_params(micro), mesh)
    params = init_params(micro, jax.random.key(0), out_shardings=p_shard)
    resnet = params["down_blocks_0"]["resnets_0"]
    assert resnet["conv1"]["kernel"].sharding == p_shard["down_blocks_0"]["resnets_0"]["conv1"]["kernel"]
    assert resnet["conv1"]["kernel"].addressable_shards[0].data.shape == (3, 3, 32, 8)  # out dim over fsdp
    # Values are right too: the temporal conv, sharded the same way, is still the identity.
    kernel = resnet["temporal_conv1"]["conv"]["kernel"]
    assert kernel.addressable_shards[0].data.shape == (3, 1, 1, 32, 8)
    expected = np.zeros((3, 1, 1, 32, 32), np.float32)
    expected[1, 0, 0] = np.eye(32)
    np.testing.assert_array_equal(np.asarray(kernel), expected)
