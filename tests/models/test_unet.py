"""U-Net behaviour: identity temporal init, input validation, remat / dtype options, config round trip."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax import config as config_lib
from emu_jax.models import UNet, UNetConfig
from emu_jax.models.layers import timestep_embedding
from emu_jax.models.unet import init_params, validate_inputs


def load_config(name: str, arg=None) -> UNetConfig:
    """UNetConfig from configs/models/<name>.py[:arg]."""
    return UNetConfig.from_dict(config_lib.load_config(f"models/{name}" + (f":{arg}" if arg else "")).to_dict())


@pytest.fixture(scope="module")
def tiny():
    cfg = load_config("unet_tiny").replace(cond_level_embed=True)  # exercise the interpolation extra too
    params = init_params(cfg, jax.random.key(0))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 3, 8, 8, cfg.in_channels)), jnp.float32)
    t = jnp.array([5, 901])
    ctx = (jnp.asarray(rng.normal(size=(2, 5, cfg.context_dims[0])), jnp.float32),)
    return cfg, params, x, t, ctx


@pytest.fixture(scope="module")
def fwd(tiny):
    """Jitted forward of the tiny model with every optional input filled in.

    Absent cond / cond_level / masks become zeros / zeros / all-valid (the
    model's own defaults), so all tests share one compiled signature per mode.
    """
    cfg = tiny[0]
    jitted = jax.jit(
        lambda p, x, t, ctx, cond, level, masks, image_mode: UNet(cfg).apply(
            {"params": p}, x, t, ctx, cond=cond, cond_level=level, context_masks=masks, image_mode=image_mode
        ),
        static_argnames=("image_mode",),
    )

    def call(p, x, t, ctx, cond=None, cond_level=None, context_masks=None, image_mode=False):
        cond = jnp.zeros(x.shape[:4] + (cfg.cond_channels,)) if cond is None else cond
        cond_level = jnp.zeros(x.shape[:1], jnp.int32) if cond_level is None else cond_level
        if context_masks is None:
            context_masks = tuple(jnp.ones(c.shape[:2], bool) for c in ctx)
        return jitted(p, x, t, ctx, cond, cond_level, context_masks, image_mode=image_mode)

    return call


@pytest.mark.slow  # ~14 s: video- and image-mode U-Net forwards compiled
def test_video_mode_equals_image_mode_at_init(tiny, fwd):
    cfg, params, x, t, ctx = tiny
    video = fwd(params, x, t, ctx)  # zero cond
    image = fwd(params, x, t, ctx, image_mode=True)
    one_frame = fwd(params, x[:, 1:2], t, ctx, image_mode=True)
    assert video.shape == x.shape[:4] + (cfg.out_channels,)
    err = float(jnp.max(jnp.abs(video - image)) / jnp.max(jnp.abs(image)))
    print(f"identity init: max |video - image| / max |image| = {err:.2e}")
    assert err <= 1e-5
    np.testing.assert_allclose(one_frame[:, 0], image[:, 1], atol=1e-5)
    assert float(jnp.std(video)) > 1e-3  # a real, non-trivial output


def test_temporal_layers_act_once_changed(tiny, fwd):
    cfg, params, x, t, ctx = tiny
    p = jax.tree_util.tree_map_with_path(
        lambda path, v: v + 0.05 if "temporal_attentions_0" in jax.tree_util.keystr(path) else v, params
    )
    video = fwd(p, x, t, ctx)
    image = fwd(p, x, t, ctx, image_mode=True)
    assert float(jnp.max(jnp.abs(video - image))) > 1e-3  # temporal layers are really in the video path
    # Frames interact only through temporal layers: in image mode frame 0 ignores the others.
    x2 = x.at[:, 1:].set(0.0)
    image2 = fwd(p, x2, t, ctx, image_mode=True)
    np.testing.assert_allclose(image2[:, 0], image[:, 0], atol=1e-5)


def test_conditioning_conv_starts_at_zero_and_then_matters(tiny, fwd):
    cfg, params, x, t, ctx = tiny
    cond = jnp.ones(x.shape[:4] + (cfg.cond_channels,))
    base = fwd(params, x, t, ctx)
    assert float(jnp.max(jnp.abs(fwd(params, x, t, ctx, cond=cond) - base))) == 0.0
    p = dict(params, conv_in_cond={"kernel": params["conv_in_cond"]["kernel"] + 0.1})
    assert float(jnp.max(jnp.abs(fwd(p, x, t, ctx, cond=cond) - base))) > 1e-3


def test_cond_level_embedding_zero_init(tiny, fwd):
    cfg, params, x, t, ctx = tiny
    assert "cond_level_embed" in params
    a = fwd(params, x, t, ctx, cond_level=jnp.array([100, 250], jnp.int32))
    np.testing.assert_array_equal(a, fwd(params, x, t, ctx))  # zero-init projection: level 0 == level 100
    p = dict(params, cond_level_embed=jax.tree.map(lambda v: v + 0.1, params["cond_level_embed"]))
    assert float(jnp.max(jnp.abs(fwd(p, x, t, ctx, cond_level=jnp.array([100, 250], jnp.int32)) - a))) > 1e-4


def test_timestep_embedding_matches_diffusers():
    torch = pytest.importorskip("torch")
    from diffusers.models.embeddings import get_timestep_embedding

    t = np.array([0, 1, 17, 999])
    for flip, shift, dim in ((True, 0, 32), (False, 1, 33)):
        ref = get_timestep_embedding(torch.tensor(t), dim, flip_sin_to_cos=flip, downscale_freq_shift=shift).numpy()
        np.testing.assert_allclose(timestep_embedding(jnp.asarray(t), dim, flip, shift), ref, atol=1e-4)


@pytest.mark.slow
def test_remat_same_output_and_grad(tiny):
    # One-level micro model: remat wraps the same block classes at every level, and compiles stay cheap.
    cfg = tiny[0].replace(channel_mult=(1,), attention_resolutions=(1,), model_channels=16)
    params = jax.tree.map(lambda v: v + 0.01, init_params(cfg, jax.random.key(3)))  # grads reach temporal too
    x, t, ctx = tiny[2][:1, :2, :4, :4], tiny[3][:1], (tiny[4][0][:1],)

    def grad_fn(remat):
        c = cfg.replace(remat=remat)
        return jax.jit(jax.value_and_grad(lambda p: jnp.mean(UNet(c).apply({"params": p}, x, t, ctx) ** 2)))

    l0, g0 = grad_fn("none")(params)
    for remat in ("full", "save_dots", "save_dots_no_batch"):
        l1, g1 = grad_fn(remat)(params)
        np.testing.assert_allclose(l1, l0, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_bfloat16_compute_close_to_float32(tiny, fwd):
    cfg, params, x, t, ctx = tiny
    f32 = fwd(params, x, t, ctx)
    bf16 = jax.jit(lambda p: UNet(cfg.replace(dtype="bfloat16")).apply({"params": p}, x, t, ctx))(params)
    assert bf16.dtype == jnp.float32 and jax.tree.leaves(params)[0].dtype == jnp.float32
    rel = float(jnp.linalg.norm(bf16 - f32) / jnp.linalg.norm(f32))
    assert rel < 5e-2, rel


def test_bad_inputs_raise_before_compile(tiny):
    cfg, params, x, t, ctx = tiny
    model = UNet(cfg)
    f = jax.jit(lambda *a, **k: model.apply({"params": params}, *a, **k))
    with pytest.raises(ValueError, match="channels"):
        f(x[..., :3], t, ctx)
    with pytest.raises(ValueError, match="divisible"):
        f(jnp.zeros((2, 3, 7, 7, cfg.in_channels)), t, ctx)
    with pytest.raises(ValueError, match="cond has shape"):
        f(x, t, ctx, cond=jnp.zeros((2, 2, 8, 8, cfg.cond_channels)))
    with pytest.raises(ValueError, match="text contexts"):
        f(x, t, ctx + ctx)
    with pytest.raises(ValueError, match=r"context 0 has shape"):
        f(x, t, (jnp.zeros((2, 5, 7)),))
    with pytest.raises(ValueError, match="timesteps"):
        f(x, jnp.zeros((3,)), ctx)
    with pytest.raises(ValueError, match="cond_level"):
        f(x, t, ctx, cond_level=jnp.zeros((3,)))
    with pytest.raises(ValueError, match="cond_level_embed=False"):
        validate_inputs(
            cfg.replace(cond_level_embed=False), x.shape, t.shape, [ctx[0].shape], None, cond_level_shape=(2,)
        )
    with pytest.raises(ValueError, match="cond_channels=0"):
        validate_inputs(cfg.replace(cond_channels=0), x.shape, t.shape, [ctx[0].shape], x.shape)


def test_context_mask_hides_padded_tokens(tiny, fwd):
    cfg, params, x, t, ctx = tiny
    mask = jnp.array([[True] * 3 + [False] * 2] * 2)
    noisy = ctx[0].at[:, 3:].set(100.0)
    a = fwd(params, x, t, (ctx[0],), context_masks=(mask,))
    b = fwd(params, x, t, (noisy,), context_masks=(mask,))
    assert float(jnp.max(jnp.abs(fwd(params, x, t, (noisy,)) - a))) > 1e-3  # all-valid mask: padding matters
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_config_round_trip_and_errors():
    cfg = load_config("unet_emu_video")
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    assert load_config("unet_emu_video", "interp").cond_level_embed
    with pytest.raises(ValueError, match="unknown UNetConfig fields"):
        UNetConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="exactly one of num_heads"):
        cfg.replace(num_heads=8)
    with pytest.raises(ValueError, match="cudnn"):
        cfg.replace(attention_impl="cudnn", dtype="float32")
    with pytest.raises(ValueError, match="remat"):
        cfg.replace(remat="sometimes")
    with pytest.raises(ValueError, match="transformer_layers"):
        cfg.replace(transformer_layers=1)  # two contexts need one layer each


@pytest.mark.slow
def test_temporal_cross_attention_starts_silent_then_reads_text_per_video(tiny):
    """With `temporal_cross_attention`, each temporal layer gains a zero-initialised text cross-attention
    (under temporal_*, so F's trainable rule takes it): at init the model equals the one without it;
    once trained, each video's temporal path reads its own prompt."""
    keys = lambda tree: {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)}  # noqa: E731
    cfg0, params0, x, t, ctx = tiny
    cfg = cfg0.replace(temporal_cross_attention=True)
    params = init_params(cfg, jax.random.key(0))
    added = keys(params) - keys(params0)
    assert added and all("temporal_attentions" in k and ("attn2" in k or "norm2" in k) for k in added)
    run = jax.jit(lambda cfg_, p, c: UNet(cfg_).apply({"params": p}, x, t, c), static_argnums=0)
    np.testing.assert_allclose(run(cfg, params, ctx), run(cfg0, params0, ctx), atol=1e-6)

    trained = jax.tree_util.tree_map_with_path(
        lambda p, v: v + 0.05 if "temporal_attentions" in jax.tree_util.keystr(p) else v, params
    )
    silenced = jax.tree_util.tree_map_with_path(  # the same, with the cross-attention's output back at zero
        lambda p, v: jnp.zeros_like(v) if "attn2']['to_out_0" in jax.tree_util.keystr(p) else v, trained
    )
    ctx2 = (ctx[0].at[1].set(-ctx[0][1]),)  # only video 1's prompt changes
    a, b = run(cfg, trained, ctx), run(cfg, trained, ctx2)
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)  # video 0 does not see video 1's prompt
    through_spatial = run(cfg, silenced, ctx2)[1] - run(cfg, silenced, ctx)[1]
    assert float(jnp.max(jnp.abs((b[1] - a[1]) - through_spatial))) > 1e-4  # the temporal path reads text


@pytest.mark.slow  # ~10 s: initialises three U-Net variants
def test_init_from_overlay_copies_every_matching_param_and_names_misfits(tiny):
    """A checkpoint of the same architecture initialises every param (leaf for leaf the checkpoint's);
    a checkpoint whose shapes do not fit is an error naming the param."""
    from emu_jax.training.init_from import overlay_params

    cfg1, params1, *_ = tiny
    trained = jax.tree_util.tree_map_with_path(  # temporal convs away from the identity
        lambda p, v: v + 0.02 if "temporal_conv" in jax.tree_util.keystr(p) else v, nn.unbox(params1)
    )
    params, report = overlay_params(nn.unbox(init_params(cfg1, jax.random.key(5))), trained)
    assert "0 kept from init" in report
    assert jax.tree.structure(params) == jax.tree.structure(trained)
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(trained)):
        np.testing.assert_array_equal(got, want)
    wider = cfg1.replace(model_channels=48)
    with pytest.raises(ValueError, match="does not fit the model"):
        overlay_params(nn.unbox(init_params(wider, jax.random.key(0))), trained)


def test_init_from_groups_take_only_those_groups():
    """train.init_from_groups=vae,text: the VAE and text encoder from the checkpoint, a fresh U-Net."""
    from emu_jax.training.init_from import overlay_params

    fresh = {g: {"w": np.zeros(2, np.float32)} for g in ("text", "unet", "vae")}
    ckpt = {g: {"w": np.ones(2, np.float32)} for g in ("text", "unet", "vae")}
    params, report = overlay_params(fresh, ckpt, groups=("vae", "text"))
    assert [float(params[g]["w"][0]) for g in ("text", "unet", "vae")] == [1.0, 0.0, 1.0]
    assert report.startswith("2 params loaded, 1 kept from init")
    with pytest.raises(
        ValueError, match=r"unknown init_from_groups \['vea'\]; the model's groups: \['text', 'unet', 'vae'\]"
    ):
        overlay_params(fresh, ckpt, groups=("vea",))
