"""The demo's FID / FVD stand-ins (the shipped VAE encoder as the feature net): the frame-level one sees
frames, the video-level one sees their order."""

import numpy as np
import pytest

from emu_jax.ablate.metrics import frechet_to
from emu_jax.demo import ablate_metrics, evaluate


def test_vae_features_see_frames_and_motion():
    real, _ = evaluate.real_clips(96, 7, resolution=32, num_frames=8, fps=4)
    a, b = real[:48], real[48:]
    shuffled = b[:, np.random.default_rng(0).permutation(8)]  # the same frames of each clip, out of order
    frames = frechet_to(ablate_metrics.vae_features(a, 4))
    assert ablate_metrics.vae_features(a, 4).shape == (48, 8, 64)
    want = frames(ablate_metrics.vae_features(b, 4))
    assert frames(ablate_metrics.vae_features(shuffled, 4)) == pytest.approx(want, rel=1e-6)  # order-blind
    fvd = frechet_to(ablate_metrics.vae_features(a, 2).reshape(48, 1, -1))
    same, disordered = (fvd(ablate_metrics.vae_features(x, 2).reshape(48, 1, -1)) for x in (b, shuffled))
    assert disordered > 1.5 * same, (same, disordered)
