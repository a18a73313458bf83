"""KL autoencoder: shapes, posterior, chunked video encode/decode, input validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax.models import autoencoder as ae
from emu_jax.models import vae_video

CFG = ae.VAEConfig(
    latent_channels=8,
    block_out_channels=(8, 16),
    layers_per_block=1,
    norm_num_groups=4,
    scaling_factor=0.5,
    shift_factor=0.1,
)


@pytest.fixture(scope="module")
def params():
    return ae.init_params(CFG, jax.random.PRNGKey(0), image_size=8)


def test_config_roundtrip_and_factor():
    assert ae.VAEConfig.from_dict(CFG.to_dict()) == CFG
    assert CFG.downsample_factor == 2
    with pytest.raises(ValueError, match="unknown VAEConfig keys"):
        ae.VAEConfig.from_dict({"z_channels": 8})
    with pytest.raises(ValueError, match="norm_num_groups"):
        ae.VAEConfig(block_out_channels=(8, 12), norm_num_groups=8)


def test_encode_decode_shapes_and_posterior(params):
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 8, 8, 3), minval=-1, maxval=1)
    post = ae.encode(CFG, params, x)
    assert post.mean.shape == (2, 4, 4, 8) and post.logvar.shape == (2, 4, 4, 8)
    s1, s2 = post.sample(jax.random.PRNGKey(2)), post.sample(jax.random.PRNGKey(3))
    assert not np.allclose(s1, s2) and s1.shape == post.mean.shape
    kl = post.kl()
    assert kl.shape == (2,) and bool(jnp.all(kl >= 0))
    # KL of the standard normal against itself is zero.
    zero = ae.DiagonalGaussian(jnp.zeros((1, 2, 2, 8)), jnp.zeros((1, 2, 2, 8)))
    np.testing.assert_allclose(zero.kl(), 0.0, atol=1e-7)
    y = ae.decode(CFG, params, post.mean)
    assert y.shape == x.shape and y.dtype == jnp.float32


def test_latent_scaling_is_inverted():
    z = jnp.arange(6.0)
    lat = ae.scale_latents(CFG, z)
    np.testing.assert_allclose(lat, (z - 0.1) * 0.5, rtol=1e-6)
    np.testing.assert_allclose(ae.unscale_latents(CFG, lat), z, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_chunked_video_equals_unchunked(params):
    x = jax.random.uniform(jax.random.PRNGKey(4), (2, 3, 8, 8, 3), minval=-1, maxval=1)
    # 6 frames in chunks of 4 exercises the padded last chunk.
    z4 = vae_video.encode_video(CFG, params, x, chunk=4)
    z_all = ae.scale_latents(CFG, ae.encode(CFG, params, x.reshape(6, 8, 8, 3)).mean).reshape(2, 3, 4, 4, 8)
    np.testing.assert_allclose(z4, z_all, rtol=1e-5, atol=1e-5)
    z1 = vae_video.encode_video(CFG, params, x, chunk=1)
    np.testing.assert_allclose(z1, z_all, rtol=1e-5, atol=1e-5)
    zs = vae_video.encode_video(CFG, params, x, rng=jax.random.PRNGKey(0), chunk=4)
    assert zs.shape == z4.shape and not np.allclose(zs, z4)
    v4 = vae_video.decode_video(CFG, params, z4, chunk=4)
    v_all = ae.decode(CFG, params, ae.unscale_latents(CFG, z4.reshape(6, 4, 4, 8))).reshape(2, 3, 8, 8, 3)
    np.testing.assert_allclose(v4, v_all, rtol=1e-5, atol=1e-5)
    assert v4.dtype == jnp.float32


def test_bad_inputs_name_the_problem(params):
    with pytest.raises(ValueError, match=r"9x8 is not divisible .* factor 2"):
        ae.encode(CFG, params, jnp.zeros((1, 9, 8, 3)))
    with pytest.raises(ValueError, match="4 channels.*in_channels=3"):
        vae_video.encode_video(CFG, params, jnp.zeros((1, 2, 8, 8, 4)))
    with pytest.raises(ValueError, match="expects .*8\\) channels-last"):
        vae_video.decode_video(CFG, params, jnp.zeros((1, 2, 4, 4, 4)))
    with pytest.raises(ValueError, match="video must be"):
        vae_video.encode_video(CFG, params, jnp.zeros((2, 8, 8, 3)))


def test_config_files_build_and_sd_param_count():
    from emu_jax.config import load_config

    sd = ae.VAEConfig.from_dict(load_config("models/vae_sd.py").to_dict())
    emu = ae.VAEConfig.from_dict(load_config("models/vae_emu.py").to_dict())
    tiny = ae.VAEConfig.from_dict(load_config("models/vae_tiny.py:8").to_dict())
    assert (sd.latent_channels, emu.latent_channels, tiny.latent_channels) == (4, 8, 8)
    assert sd.downsample_factor == emu.downsample_factor == 8
    shapes = jax.eval_shape(lambda: ae.init_params(sd, jax.random.PRNGKey(0), image_size=8))
    n = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes))
    assert n == 83_653_863  # diffusers' SD 1.x AutoencoderKL parameter count


def test_batch_sharded_video_encode_and_decode_gather_nothing(params):
    """Chunking keeps the batch axis leading, so each device encodes only its own clips."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from emu_jax import sharding

    mesh = sharding.make_mesh({"data": 8})
    video = jax.ShapeDtypeStruct((8, 3, 8, 8, 3), jnp.float32, sharding=NamedSharding(mesh, P("data")))
    enc = jax.jit(lambda v: vae_video.encode_video(CFG, params, v, chunk=2)).lower(video).compile().as_text()
    latents = jax.ShapeDtypeStruct(
        (8, 3, 4, 4, CFG.latent_channels), jnp.float32, sharding=NamedSharding(mesh, P("data"))
    )
    dec = jax.jit(lambda z: vae_video.decode_video(CFG, params, z, chunk=2)).lower(latents).compile().as_text()
    for name, hlo in (("encode", enc), ("decode", dec)):
        assert "all-gather" not in hlo and "all-to-all" not in hlo, f"{name} moves the batch between devices"
