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


def test_table1_study_builds_every_arm():
    """studies/demo_table1.py: four arms on the shipped F, each a valid trainable config differing by its change."""
    from emu_jax.ablate import study

    s = study.load("studies/demo_table1.py")
    assert list(s.arms) == ["factorised", "direct", "eps", "spatial_tuned"] and s.baseline == "factorised"
    assert s.arms["direct"].cfg.sampling.video_from == "text" and s.arms["direct"].cfg.train.drop_text == 0.0
    assert s.arms["eps"].cfg.diffusion.prediction == "eps" and s.arms["spatial_tuned"].cfg.train.trainable == "all"
    assert {a.cfg.train.steps for a in s.arms.values()} == {300}
    assert {a.cfg.train.init_from for a in s.arms.values()} == {str(ablate_metrics.DEMO_MODEL)}


def test_schedule_study_trains_a_fresh_unet_each_way():
    """studies/demo_schedule.py: T2I from the shipped VAE and text encoder only, v against eps."""
    from emu_jax.ablate import study

    s = study.load("studies/demo_schedule.py")
    assert list(s.arms) == ["v", "eps"] and {a.cfg.train.init_from_groups for a in s.arms.values()} == {"vae,text"}
    assert s.arms["v"].cfg.diffusion.prediction == "v" and s.arms["eps"].cfg.diffusion.prediction == "eps"
    assert not s.arms["eps"].cfg.diffusion.zero_terminal_snr and s.arms["v"].cfg.train.task == "t2i"
