"""The demo's FID / FVD stand-ins (the shipped VAE encoder as the feature net): the frame-level one sees
frames, the video-level one sees their order."""

import numpy as np
import pytest

from emu_jax.ablate.metrics import frechet_to
from emu_jax.demo import ablate_metrics, evaluate, shapes


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


class _Rendered:
    """A stand-in arm whose F draws exactly the prompted clip (8 frames at 4 fps) and whose I gives that clip
    at 16 fps (37 frames), with item 0's 16 fps video teleporting the shape for one frame."""

    def __init__(self, num_items):
        self.settings = {"num_items": num_items, "seed": 1234}
        wanted = evaluate.prompt_set(num_items, 1234)
        self.clips = np.stack([shapes.render_clip(w, 37, 32) for w in wanted])
        self.clips[0, 22] = self.clips[0, 36]  # not a given slot: F's video keeps its track
        self.calls = []

    def sample(self, prompts, interp=None):
        self.calls.append(interp)
        assert prompts == ablate_metrics.prompts(self.settings["num_items"], 1234)
        return self.clips if interp else self.clips[:, 4:33:4]


def test_16fps_metrics_read_motion_on_the_interpolated_video():
    ctx = _Rendered(6)
    assert str(ablate_metrics.SHIPPED_I).endswith("demo_model/interp")
    np.testing.assert_array_equal(ablate_metrics.smooth_16fps(ctx), [0, 1, 1, 1, 1, 1])  # F's video has no jump
    for m in ("all_correct", "direction", "consistent"):
        np.testing.assert_array_equal(getattr(ablate_metrics, f"{m}_16fps")(ctx), 1.0)
        np.testing.assert_array_equal(getattr(ablate_metrics, m)(ctx), 1.0)
    assert ctx.calls[0] == str(ablate_metrics.SHIPPED_I) and ablate_metrics.direction_16fps.better == "higher"
    assert ablate_metrics.consistent_16fps.__name__ == "consistent_16fps"


def test_table1_16fps_study_evaluates_table1_arms(monkeypatch):
    from emu_jax.ablate import study

    monkeypatch.setenv("TABLE1_OUT", "/runs/t1")
    s = study.load("studies/demo_table1_16fps.py")
    assert {n: a.checkpoint for n, a in s.arms.items()} == {
        n: f"/runs/t1/arms/{n}/run" for n in ("factorised", "direct", "spatial_tuned")
    }
    assert s.eval["num_items"] == 40 and s.eval["metrics"][0].endswith(":all_correct_16fps")
