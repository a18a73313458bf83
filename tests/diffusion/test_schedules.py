"""Noise schedules vs diffusers' float32 ones, zero-terminal-SNR rescale, timestep spacing, pytree use."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax.diffusion import schedules

torch = pytest.importorskip("torch")


def _diffusers_betas(name, zero_snr):
    from diffusers import DDIMScheduler

    ref = DDIMScheduler(
        beta_schedule="squaredcos_cap_v2" if name == "cosine" else name,
        beta_start=0.00085,
        beta_end=0.012,
        rescale_betas_zero_snr=zero_snr,
    )
    return ref.betas.numpy(), ref.alphas_cumprod.numpy()


@pytest.mark.parametrize("name", schedules.BETA_SCHEDULES)
@pytest.mark.parametrize("zero_snr", [False, True])
def test_alphas_cumprod_match_diffusers(name, zero_snr):
    """We compute in float64 (as LDM/SD did); diffusers accumulates in float32, hence a small rtol."""
    betas_ref, ac_ref = _diffusers_betas(name, zero_snr)
    sched = schedules.make_schedule(name, zero_terminal_snr=zero_snr)
    assert sched.alphas_cumprod.dtype == np.float32 and sched.alphas_cumprod.shape == (1000,)
    np.testing.assert_allclose(sched.alphas_cumprod, ac_ref, rtol=5e-5, atol=1e-6)
    if not zero_snr:  # rescaled betas are ratios of float32 cumprods in diffusers, so only checked here
        np.testing.assert_allclose(sched.betas, betas_ref, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(sched.alphas_cumprod, ac_ref, rtol=2e-5 if name == "cosine" else 2e-6)


def test_scaled_linear_is_the_papers_quad_schedule():
    sched = schedules.make_schedule("quad")
    assert sched.beta_schedule == "scaled_linear"
    np.testing.assert_allclose(sched.betas[[0, -1]], [0.00085, 0.012], rtol=1e-6)
    np.testing.assert_allclose(
        np.sqrt(sched.betas[1:]) - np.sqrt(sched.betas[:-1]), (0.012**0.5 - 0.00085**0.5) / 999, rtol=1e-4
    )


def test_zero_terminal_snr_rescale():
    plain = schedules.make_schedule("scaled_linear")
    zt = schedules.make_schedule("scaled_linear", zero_terminal_snr=True)
    assert zt.alphas_cumprod[-1] == 0.0 and float(zt.snr[-1]) == 0.0
    assert float(plain.snr[-1]) > 0.004  # the flaw Lin et al. fix: ~0.0047 left at t = N
    np.testing.assert_allclose(zt.alphas_cumprod[0], plain.alphas_cumprod[0], rtol=1e-6)
    assert np.all(np.diff(zt.alphas_cumprod) < 0)
    # sqrt(alphas_cumprod) is an affine map of the original one.
    a, b = np.sqrt(plain.alphas_cumprod.astype(np.float64)), np.sqrt(zt.alphas_cumprod.astype(np.float64))
    slope, icpt = np.polyfit(a, b, 1)
    np.testing.assert_allclose(b, slope * a + icpt, atol=1e-6)


def test_helpers_are_consistent():
    sched = schedules.make_schedule("linear", beta_start=1e-4, beta_end=0.02)
    ac = sched.alphas_cumprod.astype(np.float64)
    np.testing.assert_allclose(sched.sqrt_alphas_cumprod**2 + sched.sqrt_one_minus_alphas_cumprod**2, 1.0, atol=1e-6)
    np.testing.assert_allclose(sched.snr, ac / (1 - ac), rtol=1e-5)
    np.testing.assert_allclose(np.cumprod(np.asarray(sched.alphas, np.float64)), ac, rtol=1e-5)
    alpha, sigma = sched.coefficients(jnp.array([0, 999]))
    np.testing.assert_allclose(alpha, np.sqrt(ac[[0, 999]]), rtol=1e-6)
    np.testing.assert_allclose(sigma, np.sqrt(1 - ac[[0, 999]]), rtol=1e-6)


def test_schedule_is_a_pytree_usable_inside_jit():
    sched = schedules.make_schedule("scaled_linear", zero_terminal_snr=True)
    leaves, treedef = jax.tree_util.tree_flatten(sched)
    assert len(leaves) == 2
    seen = {}

    def f(s, t):
        seen.update(n=s.num_train_steps, zt=s.zero_terminal_snr, traced=isinstance(s.alphas_cumprod, jax.core.Tracer))
        return s.snr[t]

    assert float(jax.jit(f)(sched, jnp.int32(999))) == 0.0
    assert seen == dict(n=1000, zt=True, traced=True)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert rebuilt.beta_schedule == "scaled_linear" and rebuilt.zero_terminal_snr


@pytest.mark.parametrize("spacing", schedules.SPACINGS)
def test_dpm_solver_timestep_layout(spacing):
    from diffusers import DPMSolverMultistepScheduler

    for n in (1, 10, 25, 999):
        ref = DPMSolverMultistepScheduler(timestep_spacing=spacing)
        ref.set_timesteps(n)
        ours = schedules.inference_timesteps(1000, n, spacing, extra_point=True)
        np.testing.assert_array_equal(ours, ref.timesteps.numpy())


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: schedules.make_schedule("sigmoid"), "sigmoid"),
        (lambda: schedules.make_schedule("linear", num_train_steps=1), "num_train_steps"),
        (lambda: schedules.make_schedule("linear", beta_start=0.1, beta_end=0.01), "beta_start"),
        (lambda: schedules.inference_timesteps(1000, 10, "uniform"), "uniform"),
        (lambda: schedules.inference_timesteps(1000, 0, "trailing"), "num_steps"),
        (lambda: schedules.inference_timesteps(1000, 1001, "trailing"), "1001"),
        (lambda: schedules.inference_timesteps(1000, 1000, "linspace", extra_point=True), "strictly decreasing"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
