"""Mesh construction and logical-axis sharding on 8 simulated CPU devices."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from emu_jax import sharding


class _Mlp(nn.Module):
    @nn.compact
    def __call__(self, x):
        w1 = self.param(
            "w1", nn.with_logical_partitioning(nn.initializers.normal(1.0), ("embed", "mlp")), (x.shape[-1], 16)
        )
        w2 = self.param(
            "w2", nn.with_logical_partitioning(nn.initializers.normal(1.0), ("mlp", "embed")), (16, x.shape[-1])
        )
        b = self.param("b", nn.with_logical_partitioning(nn.initializers.zeros, ("norm",)), (3,))  # 3: not divisible
        h = nn.with_logical_constraint(jnp.tanh(x @ w1), ("activation_batch", "activation_mlp"))
        return h @ w2 + b.sum()


def test_eight_devices_available():
    assert jax.device_count() == 8


@pytest.mark.parametrize(
    "shape,expected",
    [
        ({"data": -1}, {"data": 8, "fsdp": 1, "tensor": 1}),
        ({"data": 2, "fsdp": -1}, {"data": 2, "fsdp": 4, "tensor": 1}),
        ({"data": 2, "fsdp": 2, "tensor": 2}, {"data": 2, "fsdp": 2, "tensor": 2}),
    ],
)
def test_mesh_shapes(shape, expected):
    assert dict(sharding.make_mesh(shape).shape) == expected


@pytest.mark.parametrize(
    "shape,msg",
    [
        ({"data": 3, "fsdp": -1}, "not divisible"),
        ({"data": -1, "fsdp": -1}, "at most one"),
        ({"data": 4, "fsdp": 4}, "uses 16 devices"),
        ({"model": 2}, "unknown"),
    ],
)
def test_bad_mesh(shape, msg):
    with pytest.raises(ValueError, match=msg):
        sharding.make_mesh(shape)


def test_bad_rule_names_axis():
    with pytest.raises(ValueError, match="'model'"):
        sharding.normalize_rules([("embed", "model")])


@pytest.mark.parametrize("mesh_shape", [{"data": 2, "fsdp": 4}, {"data": 2, "fsdp": 2, "tensor": 2}])
def test_sharded_forward_equals_single_device(mesh_shape):
    model = _Mlp()
    x = jax.random.normal(jax.random.key(1), (8, 8))
    params = nn.meta.unbox(model.init(jax.random.key(0), x))
    expected = model.apply(params, x)

    mesh = sharding.make_mesh(mesh_shape)
    boxed = jax.eval_shape(model.init, jax.random.key(0), x)
    shardings = sharding.params_shardings(boxed, mesh)
    w1 = shardings["params"]["w1"].spec
    assert w1 == P("fsdp", "tensor" if mesh.shape["tensor"] > 1 else None) or w1 == P("fsdp", "tensor")
    assert shardings["params"]["b"].spec == P(None)  # 'norm' -> replicated
    with sharding.use_mesh(mesh):
        params_s = jax.device_put(params, shardings)
        x_s = jax.device_put(x, sharding.batch_sharding(mesh, 2))
        out = jax.jit(model.apply)(params_s, x_s)
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=1e-5, atol=1e-5)
    assert out.sharding.spec[0] in (("data", "fsdp"), "data")


def test_non_divisible_dims_are_replicated():
    mesh = sharding.make_mesh({"data": 2, "fsdp": 4})
    s = sharding.logical_sharding(("embed", "mlp"), (6, 16), mesh)
    assert s.spec == P(None, "tensor")  # 6 % 4 != 0 -> replicated; tensor (size 1) divides 16
    s = sharding.logical_sharding(("activation_batch", None), (4, 3), mesh)
    assert s.spec == P("data", None)  # 4 divisible by data=2 but not by data*fsdp=8
