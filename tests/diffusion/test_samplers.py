"""Samplers vs diffusers' schedulers (same timesteps, same trajectory), the scan API, and bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusers_reference import denoise_jax, run_diffusers
from emu_jax.diffusion import samplers, schedules, solvers

pytest.importorskip("diffusers")
# diffusers' own numpy-2 deprecation noise, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

STEPS = 12
TOL = 1e-5  # float32 absolute; measured maxima are ~2e-6 except Euler at zero SNR (see below)


@pytest.fixture(scope="module")
def x_T():
    return np.random.RandomState(0).randn(2, 4, 4, 3).astype(np.float32)


@pytest.fixture(scope="module")
def noise():
    return np.random.RandomState(1).randn(STEPS, 2, 4, 4, 3).astype(np.float32)


def _schedule(zero_snr, beta_schedule="scaled_linear"):
    return schedules.make_schedule(beta_schedule, zero_terminal_snr=zero_snr)


def _compare(
    method,
    prediction,
    spacing,
    zero_snr,
    x_T,
    noise=None,
    eta=0.0,
    steps_offset=0,
    set_alpha_to_one=True,
    beta_schedule="scaled_linear",
    traj_tol=TOL,
    final_tol=TOL,
):
    sched = _schedule(zero_snr, beta_schedule)
    ac = sched.alphas_cumprod
    plan = samplers.make_plan(
        sched,
        method=method,
        num_steps=STEPS,
        prediction=prediction,
        spacing=spacing,
        eta=eta,
        steps_offset=steps_offset,
    )
    # diffusers' Euler uses fractional timesteps for linspace; ours are DDIM's integers, passed explicitly.
    custom = plan.timesteps if (method == "euler" and spacing == "linspace") else None
    ts_ref, x_ref, traj_ref = run_diffusers(
        method,
        x_T,
        ac,
        num_steps=STEPS,
        prediction=prediction,
        spacing=spacing,
        zero_snr=zero_snr,
        noise=noise,
        eta=eta,
        steps_offset=steps_offset,
        beta_schedule=beta_schedule,
        set_alpha_to_one=set_alpha_to_one,
        timesteps=custom,
    )
    np.testing.assert_array_equal(plan.timesteps, ts_ref.astype(np.int64))
    x, traj = samplers.sample(
        lambda x, t: denoise_jax(x, t, prediction, ac),
        jnp.asarray(x_T),
        sched,
        method=method,
        num_steps=STEPS,
        prediction=prediction,
        spacing=spacing,
        eta=eta,
        noise=None if noise is None else jnp.asarray(noise),
        steps_offset=steps_offset,
        set_alpha_to_one=set_alpha_to_one,
        return_trajectory=True,
    )
    assert np.all(np.isfinite(x_ref))
    np.testing.assert_allclose(np.asarray(traj), traj_ref, rtol=0, atol=traj_tol)
    np.testing.assert_allclose(np.asarray(x), x_ref, rtol=0, atol=final_tol)
    # The sampler must actually move: the output is far from the input noise.
    assert np.abs(np.asarray(x) - x_T).max() > 0.1


CASES = [
    (p, s, z)
    for p in ("eps", "v", "x0")
    for s in ("leading", "trailing", "linspace")
    for z in (False, True)
    if not (p == "eps" and z)
]


@pytest.mark.parametrize("prediction,spacing,zero_snr", CASES)
def test_ddim_matches_diffusers(prediction, spacing, zero_snr, x_T):
    _compare("ddim", prediction, spacing, zero_snr, x_T)


@pytest.mark.parametrize(
    "prediction,spacing,zero_snr,eta",
    [
        ("eps", "leading", False, 1.0),
        ("v", "trailing", False, 1.0),
        ("x0", "linspace", False, 1.0),
        ("v", "leading", True, 1.0),
        ("v", "trailing", True, 1.0),
        ("x0", "linspace", True, 0.5),
    ],
)
def test_ddim_eta_matches_diffusers_with_same_noise(prediction, spacing, zero_snr, eta, x_T, noise):
    """With 12 steps diffusers' zero-SNR first step happens to round to exactly 0 as ours does
    (with 10 / 25 / 50 steps it does not: see `test_ddim_eta1_zero_snr_first_step_is_exact`)."""
    _compare("ddim", prediction, spacing, zero_snr, x_T, noise=noise, eta=eta)


def test_ddim_sd_config_steps_offset_and_final_alpha(x_T):
    """SD 1.x's DDIM config: leading spacing, steps_offset=1, set_alpha_to_one=False."""
    _compare("ddim", "eps", "leading", False, x_T, steps_offset=1, set_alpha_to_one=False)


def test_ddim_cosine_schedule(x_T):
    _compare("ddim", "v", "trailing", False, x_T, beta_schedule="cosine")


@pytest.mark.parametrize(
    "prediction,spacing,zero_snr",
    [("eps", "leading", False), ("v", "trailing", True), ("x0", "linspace", False), ("v", "linspace", True)],
)
def test_ddpm_matches_diffusers_with_same_noise(prediction, spacing, zero_snr, x_T, noise):
    _compare("ddpm", prediction, spacing, zero_snr, x_T, noise=noise)


@pytest.mark.parametrize("prediction,spacing,zero_snr", [(p, s, z) for p, s, z in CASES if not z or s == "leading"])
def test_euler_matches_diffusers(prediction, spacing, zero_snr, x_T):
    _compare("euler", prediction, spacing, zero_snr, x_T)


@pytest.mark.parametrize("prediction,spacing", [("v", "trailing"), ("x0", "trailing"), ("v", "linspace")])
def test_euler_zero_snr_from_t_max_matches_diffusers(prediction, spacing, x_T):
    """sigma_max = 4096 here, so the VE-space sample is ~4096 and float32 cancellation (in diffusers too)
    costs up to 3e-5 on intermediate VP-space samples; the final sample stays within TOL."""
    _compare("euler", prediction, spacing, True, x_T, traj_tol=5e-5)


@pytest.mark.parametrize("prediction,spacing,zero_snr", CASES)
def test_dpmpp_2m_matches_diffusers(prediction, spacing, zero_snr, x_T):
    _compare("dpmpp_2m", prediction, spacing, zero_snr, x_T)


def test_timesteps_match_ddim_scheduler():
    from diffusers import DDIMScheduler

    sched = _schedule(False)
    for spacing in ("leading", "trailing", "linspace"):
        for n in (1, 7, 50, 250, 333, 1000):
            offsets = (0, 1) if spacing == "leading" and n < 1000 else (0,)
            for off in offsets:
                ref = DDIMScheduler(timestep_spacing=spacing, steps_offset=off)
                ref.set_timesteps(n)
                ours = samplers.timesteps(sched, n, spacing, steps_offset=off)
                assert ours.dtype == np.int32
                np.testing.assert_array_equal(ours, ref.timesteps.numpy())


def test_trailing_starts_at_last_training_step():
    ts = samplers.timesteps(_schedule(True), 250, "trailing")
    assert ts[0] == 999 and ts[-1] == 3 and len(ts) == 250


def test_stochastic_sampling_uses_rng_per_step(x_T):
    sched = _schedule(True)
    fn = jax.jit(
        lambda x, key: samplers.sample(
            lambda x, t: denoise_jax(x, t, "v", sched.alphas_cumprod),
            x,
            sched,
            method="ddpm",
            num_steps=STEPS,
            prediction="v",
            spacing="trailing",
            rng=key,
        )
    )
    a, b, c = fn(x_T, jax.random.key(0)), fn(x_T, jax.random.key(0)), fn(x_T, jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    assert np.abs(np.asarray(a) - np.asarray(c)).max() > 1e-3
    # The rng path draws exactly `step_noise(rng, i)`, so injecting that noise reproduces it.
    injected = jnp.stack([samplers.step_noise(jax.random.key(0), i, x_T.shape) for i in range(STEPS)])
    d = samplers.sample(
        lambda x, t: denoise_jax(x, t, "v", sched.alphas_cumprod),
        jnp.asarray(x_T),
        sched,
        method="ddpm",
        num_steps=STEPS,
        prediction="v",
        spacing="trailing",
        noise=injected,
    )
    np.testing.assert_allclose(a, d, atol=1e-6)


def test_schedule_can_be_a_traced_argument_and_step_api_matches_scan(x_T):
    sched = _schedule(True)
    kw = dict(method="dpmpp_2m", num_steps=STEPS, prediction="v", spacing="trailing")
    den = lambda x, t: denoise_jax(x, t, "v", sched.alphas_cumprod)  # noqa: E731
    scanned = jax.jit(lambda x, s: samplers.sample(den, x, s, **kw))(x_T, sched)
    # Python loop over the exposed per-step API (what a progress-bar pipeline does).
    plan = samplers.make_plan(sched, **kw)
    state = samplers.init_state(plan, sched, jnp.asarray(x_T))
    for i in range(plan.num_steps):
        x_in, t = samplers.model_input(plan, sched, state, i)
        assert t.shape == (2,) and t.dtype == jnp.int32
        state = samplers.step(plan, sched, state, den(x_in, t), i)
    np.testing.assert_allclose(scanned, state.x, atol=1e-6)


def test_ddim_eta1_zero_snr_first_step_is_exact(x_T, noise):
    """At t = N-1 with alphas_cumprod = 0 and eta = 1 the step is scaled x0 plus only fresh noise,
    for the 10 / 25 / 50-step layouts where diffusers' formula gives 2.4e-4 / NaN / NaN instead of 0."""
    sched = _schedule(True)
    v = jnp.asarray(noise[1])
    for n in (10, 25, 50):
        t_prev = 999 - 1000 // n
        x_prev, x0 = solvers.ddim_step(
            sched,
            v,
            jnp.asarray(x_T),
            jnp.int32(999),
            jnp.int32(t_prev),
            prediction="v",
            eta=1.0,
            noise=jnp.asarray(noise[0]),
        )
        a_prev = float(sched.alphas_cumprod[t_prev])
        np.testing.assert_allclose(x0, -v, atol=1e-6)
        np.testing.assert_allclose(x_prev, a_prev**0.5 * -v + (1 - a_prev) ** 0.5 * noise[0], atol=1e-6)


def _never_called(x, t):
    raise AssertionError("denoise_fn must not be traced for bad arguments")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(method="heun"), "heun"),
        (dict(prediction="epsilon"), "epsilon"),
        (dict(spacing="karras"), "karras"),
        (dict(num_steps=0), "num_steps"),
        (dict(num_steps=1001), "1001"),
        (dict(num_steps=2.5), "2.5"),
        (dict(eta=1.5), "eta"),
        (dict(eta=float("nan")), "eta"),
        (dict(method="euler", eta=0.5), "eta"),
        (dict(method="ddpm"), "rng"),
        (dict(steps_offset=600, spacing="leading", num_steps=2), "steps_offset"),
    ],
)
def test_bad_arguments_raise_before_tracing(kwargs, match, x_T):
    args = dict(method="ddim", num_steps=10, prediction="v", spacing="trailing") | kwargs
    with pytest.raises(ValueError, match=match):
        samplers.sample(_never_called, jnp.asarray(x_T), _schedule(False), **args)


def test_zero_terminal_snr_rejects_eps(x_T):
    with pytest.raises(ValueError, match="prediction='v'"):
        samplers.sample(
            _never_called,
            jnp.asarray(x_T),
            _schedule(True),
            method="ddim",
            num_steps=10,
            prediction="eps",
            spacing="trailing",
        )


def test_noise_shape_checked(x_T):
    with pytest.raises(ValueError, match="noise must have shape"):
        samplers.sample(
            _never_called,
            jnp.asarray(x_T),
            _schedule(False),
            method="ddpm",
            num_steps=10,
            prediction="v",
            spacing="trailing",
            noise=jnp.zeros((9,) + x_T.shape),
        )


def test_validate_sampling_args_checks_guidance():
    sched = _schedule(True)
    base = dict(method="ddim", num_steps=250, prediction="v", spacing="trailing")
    samplers.validate_sampling_args(
        sched, **base, guidance_mode="two_condition", guidance_scales={"image": 2.0, "text": 7.5}
    )
    for scales in ({"image": -1.0, "text": 7.5}, {"image": 2.0, "text": float("inf")}, {"image": 2.0}):
        with pytest.raises(ValueError, match="guidance|scale"):
            samplers.validate_sampling_args(sched, **base, guidance_mode="two_condition", guidance_scales=scales)
