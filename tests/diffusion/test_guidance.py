"""Classifier-free guidance: formulas, guidance rescale vs diffusers, one batched forward, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax.diffusion import guidance


@pytest.fixture(scope="module")
def outs():
    rs = np.random.RandomState(0)
    return tuple(jnp.asarray(rs.randn(2, 3, 4, 4, 2).astype(np.float32)) for _ in range(3))


def test_text_cfg(outs):
    cond, uncond, _ = outs
    np.testing.assert_allclose(guidance.cfg_text(cond, uncond, 1.0), cond, atol=1e-6)
    np.testing.assert_allclose(guidance.cfg_text(cond, uncond, 0.0), uncond, atol=1e-6)
    np.testing.assert_allclose(guidance.cfg_text(cond, uncond, 7.5), uncond + 7.5 * (cond - uncond), atol=1e-6)


def test_two_condition_cfg_is_specs_equation(outs):
    none, image, full = outs
    got = guidance.cfg_two_condition(none, image, full, 2.0, 7.5)
    np.testing.assert_allclose(got, none + 2.0 * (image - none) + 7.5 * (full - image), atol=1e-5)
    np.testing.assert_allclose(guidance.cfg_two_condition(none, image, full, 1.0, 1.0), full, atol=1e-6)
    np.testing.assert_allclose(guidance.cfg_two_condition(none, image, full, 1.0, 0.0), image, atol=1e-6)
    np.testing.assert_allclose(guidance.cfg_two_condition(none, image, full, 0.0, 0.0), none, atol=1e-6)


@pytest.mark.parametrize("phi", [0.0, 0.7, 1.0])
def test_guidance_rescale_matches_diffusers(phi, outs):
    torch = pytest.importorskip("torch")
    cond, uncond, _ = outs
    guided = guidance.cfg_text(cond, uncond, 7.5)

    # diffusers' rescale_noise_cfg (pipeline_stable_diffusion.py), copied to avoid importing the pipelines.
    def rescale_noise_cfg(noise_cfg, noise_pred_text, guidance_rescale):
        std_text = noise_pred_text.std(dim=list(range(1, noise_pred_text.ndim)), keepdim=True)
        std_cfg = noise_cfg.std(dim=list(range(1, noise_cfg.ndim)), keepdim=True)
        rescaled = noise_cfg * (std_text / std_cfg)
        return guidance_rescale * rescaled + (1 - guidance_rescale) * noise_cfg

    ref = rescale_noise_cfg(torch.from_numpy(np.asarray(guided)), torch.from_numpy(np.asarray(cond)), phi)
    got = guidance.rescale_guidance(guided, cond, phi)
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-5)
    if phi == 1.0:  # fully rescaled: per-example std equals the conditional output's
        np.testing.assert_allclose(jnp.std(got, axis=(1, 2, 3, 4)), jnp.std(cond, axis=(1, 2, 3, 4)), rtol=1e-5)


def _toy_model(calls):
    """model_fn(x, t, cond): output depends on x, t and a per-example conditioning vector."""

    def model_fn(x, t, cond):
        calls.append(x.shape[0])
        t_b = t.reshape(-1, 1, 1, 1, 1) / 1e3
        return jnp.tanh(x) * cond["txt"][:, None, None, None, :] + cond["img"][:, None, None, None, :] + t_b

    return model_fn


@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize(
    "mode,scales", [("text", {"text": 7.5}), ("two_condition", {"image": 2.0, "text": 7.5}), ("none", {})]
)
def test_guided_denoise_runs_one_batched_forward(mode, scales, sequential, outs):
    """Batched: one forward of n * B rows. Sequential: forwards of B rows inside a `lax.map` (traced once)."""
    x = outs[0]  # (B=2, T, H, W, C=2)
    rs = np.random.RandomState(1)
    names = guidance.MODE_CONDITIONS[mode]
    conds = [
        {"txt": jnp.asarray(rs.randn(2, 2), jnp.float32), "img": jnp.asarray(rs.randn(2, 2), jnp.float32)}
        for _ in names
    ]
    calls = []
    model_fn = _toy_model(calls)
    denoise = guidance.guided_denoise_fn(
        model_fn, guidance.batch_conditions(*conds), mode=mode, scales=scales, sequential=sequential
    )
    t = jnp.array([999, 999], jnp.int32)
    got = jax.jit(denoise)(x, t)
    assert calls == [2 if sequential and len(names) > 1 else 2 * len(names)]
    if sequential and len(names) > 1:  # the loop is in the program: one B-row forward per conditioning
        jaxpr = str(jax.make_jaxpr(denoise)(x, t))
        assert "scan" in jaxpr and f"length={len(names)}" in jaxpr
    parts = [model_fn(x, t, c) for c in conds]  # reference: separate forwards
    if mode == "text":
        want = guidance.cfg_text(parts[1], parts[0], 7.5)
    elif mode == "two_condition":
        want = guidance.cfg_two_condition(*parts, 2.0, 7.5)
    else:
        want = parts[0]
    assert got.shape == x.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_guided_denoise_accepts_condition_builder_and_scalar_t(outs):
    x = outs[0]
    seen = {}

    def build(x_nb, t_nb):
        seen["shapes"] = (x_nb.shape[0], t_nb.shape)
        return {"txt": jnp.ones((4, 2)), "img": jnp.concatenate([jnp.zeros((2, 2)), jnp.ones((2, 2))])}

    denoise = guidance.guided_denoise_fn(_toy_model([]), build, mode="text", scales={"text": 3.0})
    out = denoise(x, jnp.int32(10))
    assert seen["shapes"] == (4, (4,))
    # cond - uncond = 1 everywhere, so the guided output is uncond + 3.
    np.testing.assert_allclose(out, jnp.tanh(x) + 3.0 + 0.01, atol=1e-5)


@pytest.mark.parametrize(
    "mode,scales,phi,match",
    [
        ("text", {"text": -1.0}, 0.0, "-1.0"),
        ("text", {"text": float("nan")}, 0.0, "nan"),
        ("text", {"text": float("inf")}, 0.0, "inf"),
        ("text", {}, 0.0, "needs scale 'text'"),
        ("two_condition", {"text": 7.5}, 0.0, "needs scale 'image'"),
        ("two_condition", {"image": 2.0, "text": 7.5}, 1.5, "rescale_phi"),
        ("image_text", {"text": 7.5}, 0.0, "image_text"),
        ("text", {"text": "7.5"}, 0.0, "7.5"),
    ],
)
def test_bad_guidance_raises(mode, scales, phi, match):
    with pytest.raises(ValueError, match=match):
        guidance.guided_denoise_fn(_toy_model([]), {}, mode=mode, scales=scales, rescale_phi=phi)
