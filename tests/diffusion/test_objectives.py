"""Forward process, parameterisation round trips, training targets and min-SNR weights (vs diffusers)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax.diffusion import objectives, schedules

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def data():
    rs = np.random.RandomState(0)
    x0 = rs.randn(4, 2, 4, 4, 3).astype(np.float32)  # (B, T, H, W, C) video latents
    noise = rs.randn(*x0.shape).astype(np.float32)
    t = np.array([0, 250, 998, 999], np.int32)
    return x0, noise, t


@pytest.mark.parametrize("zero_snr", [False, True])
def test_q_sample_and_v_target_match_diffusers(zero_snr, data):
    from diffusers import DDPMScheduler

    x0, noise, t = data
    sched = schedules.make_schedule("scaled_linear", zero_terminal_snr=zero_snr)
    ref = DDPMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, rescale_betas_zero_snr=zero_snr
    )
    tx, tn, tt = torch.from_numpy(x0), torch.from_numpy(noise), torch.from_numpy(t.astype(np.int64))
    np.testing.assert_allclose(objectives.q_sample(sched, x0, t, noise), ref.add_noise(tx, tn, tt).numpy(), atol=2e-5)
    np.testing.assert_allclose(
        objectives.training_target(sched, x0, noise, t, "v"), ref.get_velocity(tx, tn, tt).numpy(), atol=2e-5
    )
    np.testing.assert_array_equal(objectives.training_target(sched, x0, noise, t, "eps"), noise)
    np.testing.assert_array_equal(objectives.training_target(sched, x0, noise, t, "x0"), x0)


@pytest.mark.parametrize("prediction", objectives.PREDICTIONS)
@pytest.mark.parametrize("zero_snr", [False, True])
def test_perfect_prediction_recovers_x0_and_eps(prediction, zero_snr, data):
    x0, noise, t = data
    sched = schedules.make_schedule("scaled_linear", zero_terminal_snr=zero_snr)
    x_t = objectives.q_sample(sched, x0, t, noise)
    target = objectives.training_target(sched, x0, noise, t, prediction)
    x0_hat, eps_hat = objectives.predict_x0_eps(sched, target, x_t, t, prediction)
    ok = np.ones(len(t), bool)
    if zero_snr and prediction == "eps":
        ok[-1] = False  # x0 from eps divides by alpha = 0 at t = N-1: the reason samplers reject this
    # Divisions by small alpha (t=999) or sigma (t=0) amplify float32 rounding; tolerances reflect that.
    np.testing.assert_allclose(np.asarray(x0_hat)[ok], x0[ok], atol=5e-4 if prediction == "eps" else 1e-5)
    np.testing.assert_allclose(np.asarray(eps_hat)[ok], noise[ok], atol=5e-4 if prediction == "x0" else 1e-5)


def test_coefficient_conversions_are_inverse():
    x_t, out = jnp.array([0.3, -1.2]), jnp.array([0.5, 2.0])
    alpha, sigma = 0.6, 0.8
    x0 = objectives.eps_to_x0(x_t, out, alpha, sigma)
    np.testing.assert_allclose(objectives.x0_to_eps(x_t, x0, alpha, sigma), out, atol=1e-6)
    x0v, epsv = objectives.v_to_x0(x_t, out, alpha, sigma), objectives.v_to_eps(x_t, out, alpha, sigma)
    np.testing.assert_allclose(alpha * x0v + sigma * epsv, x_t, atol=1e-6)  # consistent with x_t
    np.testing.assert_allclose(alpha * epsv - sigma * x0v, out, atol=1e-6)  # and with v


def _diffusers_min_snr(snr, gamma, prediction):
    """The weights of diffusers' train_text_to_image.py (`compute_snr` + min-SNR branch)."""
    w = np.minimum(snr, gamma)
    if prediction == "eps":
        return w / snr
    if prediction == "v":
        return w / (snr + 1)
    return w


@pytest.mark.parametrize("prediction", objectives.PREDICTIONS)
def test_min_snr_weights(prediction):
    sched = schedules.make_schedule("scaled_linear", zero_terminal_snr=True)
    t = np.array([0, 10, 400, 900, 998, 999], np.int32)
    w = np.asarray(objectives.loss_weight(sched, t, prediction, "min_snr", 5.0))
    snr = np.asarray(sched.snr, np.float64)[t]
    assert np.all(np.isfinite(w)) and w.shape == (6,)
    np.testing.assert_allclose(w[:-1], _diffusers_min_snr(snr[:-1], 5.0, prediction), rtol=1e-5)
    # t = N-1 has snr = 0: eps gets its limit 1, v gets 0, x0 gets 0.
    assert w[-1] == {"eps": 1.0, "v": 0.0, "x0": 0.0}[prediction]
    # High-SNR (small t) steps are down-weighted to gamma relative to eps's unclipped 1.
    if prediction == "eps":
        assert w[0] < 0.01 and w[3] == pytest.approx(1.0)
    np.testing.assert_array_equal(objectives.loss_weight(sched, t, prediction, "uniform"), np.ones(6))


@pytest.mark.parametrize("prediction", objectives.PREDICTIONS)
def test_eps_mse_weighting_is_the_implied_noise_error(data, prediction):
    """`eps_mse`: whatever the prediction, the loss equals the MSE of the noise it implies."""
    x0, noise, t = data
    t = t[:3]  # t = N-1 under zero terminal SNR has no defined eps from x0
    x0, noise = x0[:3], noise[:3]
    sched = schedules.make_schedule("scaled_linear", zero_terminal_snr=True)
    out = objectives.training_target(sched, x0, noise, t, prediction) + 0.3 * np.random.RandomState(1).randn(
        *x0.shape
    ).astype(np.float32)
    x_t = objectives.q_sample(sched, x0, t, noise)
    _, eps_hat = objectives.predict_x0_eps(sched, out, x_t, t, prediction)
    want = np.mean(np.square(np.asarray(eps_hat, np.float64) - noise).reshape(3, -1), axis=1)
    got = objectives.diffusion_loss(sched, out, x0, noise, t, prediction, "eps_mse")
    np.testing.assert_allclose(got, want, rtol=2e-3)


def test_diffusion_loss_is_weighted_per_example_mse(data):
    x0, noise, t = data
    sched = schedules.make_schedule("scaled_linear", zero_terminal_snr=True)
    target = objectives.training_target(sched, x0, noise, t, "v")
    assert np.all(np.asarray(objectives.diffusion_loss(sched, target, x0, noise, t, "v")) == 0)
    out = target + 0.5
    loss = objectives.diffusion_loss(sched, out, x0, noise, t, "v", "min_snr")
    w = objectives.loss_weight(sched, t, "v", "min_snr")
    assert loss.shape == (4,) and loss.dtype == jnp.float32
    np.testing.assert_allclose(loss, 0.25 * np.asarray(w), rtol=1e-5)
    # bf16 model outputs are upcast before squaring.
    loss_bf16 = objectives.diffusion_loss(sched, out.astype(jnp.bfloat16), x0, noise, t, "v")
    assert loss_bf16.dtype == jnp.float32
    grad = jax.grad(lambda o: objectives.diffusion_loss(sched, o, x0, noise, t, "v").mean())(out)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda s, t: objectives.training_target(s, t, t, t, "epsilon"), "epsilon"),
        (lambda s, t: objectives.loss_weight(s, t, "v", "p2"), "p2"),
        (lambda s, t: objectives.loss_weight(s, t, "v", "min_snr", 0.0), "min_snr_gamma"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call(schedules.make_schedule("linear"), jnp.zeros((2,), jnp.int32))
