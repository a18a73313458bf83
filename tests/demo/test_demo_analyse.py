"""The moving-shapes analyser reads rendered and dataset (H.264) clips back correctly."""

import types

import numpy as np
import pytest

from emu_jax.data import clips
from emu_jax.demo import analyse, shapes, word_probe
from emu_jax.demo.dataset import make_shapes_example


def _accuracy(videos, attrs):
    s = analyse.summarise([analyse.analyse_video(v) for v in videos], [a.to_dict() for a in attrs])
    print(s)
    return s


def test_rendered_clips_read_back_at_98_percent_per_attribute():
    rng = np.random.default_rng(123)
    attrs = [shapes.sample_attributes(rng) for _ in range(100)]
    s = _accuracy([shapes.render_clip(a, 8, 32) for a in attrs], attrs)
    for a in analyse.ATTRIBUTES:
        assert s[f"{a}_accuracy"] >= 0.98, (a, s)
    assert s["consistent_fraction"] >= 0.98


def test_h264_dataset_clips_read_back():
    """The dataset path (render -> H.264 -> decode at 4 fps) keeps every attribute readable."""
    rng = np.random.default_rng(7)
    videos, attrs = [], []
    for i in range(30):
        ex = make_shapes_example(np.random.default_rng([7, 2, i]), key=str(i), resolution=32, num_frames=40, fps=16.0)
        videos.append(
            clips.from_unit_range(
                clips.load_clip(ex["video"], src_fps=16.0, src_num_frames=40, num_frames=8, fps=4.0, resolution=32)
            )
        )
        attrs.append(shapes.ShapeAttrs.from_dict(ex))
    del rng
    s = _accuracy(videos, attrs)
    for a in analyse.ATTRIBUTES:
        assert s[f"{a}_accuracy"] >= 0.98, (a, s)
    assert s["start_side_accuracy"] >= 0.95, s  # real clips start on the side they move away from


def test_wrong_readings_are_caught():
    """A mismatch in each attribute is scored wrong; a blank or flickering video is not consistent."""
    a = shapes.ShapeAttrs("circle", "red", "black", "left", 0.8, 0.3, 0.9, 0.5)
    video = shapes.render_clip(a, 8, 32)
    reading = analyse.analyse_video(video)
    assert analyse.score(reading, a.to_dict()) == {k: True for k in analyse.ATTRIBUTES}
    for field, other in (("shape", "square"), ("color", "blue"), ("background", "white"), ("direction", "right")):
        assert not analyse.score(reading, {**a.to_dict(), field: other})[field]
    assert analyse.start_side(reading, "left") == [True]  # starts right of the centre, moves left
    assert analyse.start_side(reading, "right") == [False]
    assert analyse.start_side(reading, "up-left") == [True, reading["start_center"][1] > 15.5]
    blank = np.zeros_like(video)
    r = analyse.analyse_video(blank)
    assert r["color"] is None and r["direction"] is None and not r["consistent"]
    assert analyse.start_side(r, "down-right") == [False, False]
    flicker = video.copy()
    flicker[3] = 0
    assert not analyse.analyse_video(flicker)["consistent"]
    with pytest.raises(ValueError, match="must be"):
        analyse.analyse_video(video[0])


def test_jump_ratio_finds_a_teleport_that_real_16fps_clips_do_not_have():
    """Real dataset clips at I's 16 fps (sub-pixel steps, H.264) stay under JUMP_LIMIT; the same clip
    with its second half moved away (the shape teleports once) goes over it."""
    from emu_jax.demo import evaluate

    videos, attrs = evaluate.real_clips(12, 3, resolution=32, num_frames=37, fps=16.0)
    smooth = [analyse.analyse_video(clips.from_unit_range(v)) for v in videos]
    ratios = [r["jump_ratio"] for r in smooth]
    assert max(ratios) < analyse.JUMP_LIMIT and min(ratios) >= 1.0, ratios
    s = analyse.summarise(smooth, [a.to_dict() for a in attrs])
    assert s["jumpy_fraction"] == 0.0 and 1.0 <= s["median_jump_ratio"] < analyse.JUMP_LIMIT
    a = shapes.ShapeAttrs("square", "green", "black", "right", 0.6, 0.3, 0.1, 0.5)
    clip = shapes.render_clip(a, 37, 32)
    assert analyse.analyse_video(clip)["jump_ratio"] < analyse.JUMP_LIMIT
    teleport = np.concatenate([clip[:20], clip[36:37].repeat(17, 0)])  # jumps to the end and stays there
    jumped = analyse.analyse_video(teleport)
    assert jumped["jump_ratio"] > analyse.JUMP_LIMIT and jumped["jump_frame"] == 19
    # median_step_px is the ratio's denominator, so ratio x median is the teleport's length in pixels.
    (x0, y0), (x1, y1) = (analyse.analyse_frame(clip[t])["soft_center"] for t in (19, 36))
    assert jumped["jump_ratio"] * jumped["median_step_px"] == pytest.approx(np.hypot(x1 - x0, y1 - y0))
    assert np.isnan(analyse.analyse_video(np.zeros((3, 32, 32, 3), np.uint8))["median_step_px"])  # no shape
    ratio, frame = analyse.jump_ratio([None, (1.0, 1.0), None, (2.0, 2.0)])
    assert np.isnan(ratio) and frame is None  # no two consecutive steps
    ratio, frame = analyse.jump_ratio([(0, 0), (0, 0), (0, 0), (0.04, 0)])
    assert ratio == pytest.approx(0.04 / analyse.MIN_STEP) and frame == 2


def test_evaluation_scores_samples_and_prompt_set_is_held_out():
    """`score_samples` reads keyframe attributes from the keyframe and motion from the video."""
    import types

    from emu_jax.demo import evaluate

    wanted = evaluate.prompt_set(6, seed=3)
    assert wanted == evaluate.prompt_set(6, seed=3) and wanted != evaluate.prompt_set(6, seed=4)
    train_like = shapes.sample_attributes(np.random.default_rng([0, 0, 0]))  # the dataset's train example 0
    assert all(w != train_like for w in wanted)
    samples = []
    for i, a in enumerate(wanted):
        video = shapes.render_clip(a, 8, 32)
        if i == 0:  # a video moving the wrong way: only its direction is wrong
            video = video[::-1]
        samples.append(types.SimpleNamespace(keyframe=video[0], video=video, interpolated=None))
    summary, readings = evaluate.score_samples(samples, wanted)
    assert summary["color_accuracy"] == summary["shape_accuracy"] == summary["background_accuracy"] == 1.0
    assert summary["direction_accuracy"] == pytest.approx(5 / 6)
    assert len(readings) == 6 and "background_brightness" in readings[0]


def test_given_frame_error_reads_the_given_slots():
    """I's output that holds F's frames at slots 4, 8, ..., 32 scores 0; shifting them by one slot
    scores about the inter-frame motion."""
    import types

    from emu_jax import conditioning
    from emu_jax.demo import evaluate

    layout = conditioning.SlotLayout(num_given=8, factor=4, pad=4)
    attrs = evaluate.prompt_set(3, seed=5)
    dense = [shapes.render_clip(a, layout.num_slots + 1, 32) for a in attrs]  # 16 fps ground truth
    samples = [types.SimpleNamespace(video=d[layout.given_slots], interpolated=d[:-1]) for d in dense]
    exact = evaluate.given_frame_error(samples, layout)
    assert exact["interp_given_rms"] == 0.0 and exact["video_interframe_rms"] > 10.0
    shifted = [types.SimpleNamespace(video=d[layout.given_slots], interpolated=d[1:]) for d in dense]
    off = evaluate.given_frame_error(shifted, layout)["interp_given_rms"]
    assert 0.0 < off < exact["video_interframe_rms"]
    # With interpolation, F's own frames are scored as well: here F's first video runs backwards.
    for s, d in zip(samples, dense):
        s.keyframe = d[0]
    samples[0].video = samples[0].video[::-1]
    summary, _ = evaluate.score_samples(samples, attrs, layout)
    assert summary["direction_accuracy"] == 1.0
    assert summary["f_video_direction_accuracy"] == pytest.approx(2 / 3)
    assert summary["f_video_consistent_fraction"] == 1.0
    assert summary["f_video_all_correct"] == pytest.approx(2 / 3) and summary["all_correct"] == 1.0
    assert summary["jumpy_fraction"] == 0.0 and summary["jumpy_not_in_f"] == 0
    # An interpolated video that teleports where F's video does not is counted against I.
    samples[1].interpolated = np.concatenate([dense[1][:20], dense[1][36:37].repeat(16, 0)])
    summary, readings = evaluate.score_samples(samples, attrs, layout)
    assert summary["jumpy_not_in_f"] == 1 and summary["f_video_jumpy_fraction"] == 0.0
    assert readings[1]["jump_ratio"] > analyse.JUMP_LIMIT >= readings[1]["f_jump_ratio"]
    assert evaluate.given_frame_error([types.SimpleNamespace(video=d, interpolated=None) for d in dense], layout) == {}
    two = conditioning.output_given_positions(16, layout)
    assert two.tolist()[:9] == [4, 8, 12, 16, 20, 24, 28, 32, 36] and len(two) == 16
    with pytest.raises(ValueError, match="5 given frames"):
        conditioning.output_given_positions(5, layout)


@pytest.mark.slow
def test_text_sensitivity_finds_an_erased_attribute():
    """A word-embedding encoder that maps every direction word to one vector scores 0 on direction and
    > 0 elsewhere; the demo's real random-init text encoder tells every attribute apart."""
    from emu_jax.demo import evaluate
    from emu_jax.models.tokenizers import load_tokenizer

    wanted = evaluate.prompt_set(12, seed=7)
    tok = load_tokenizer(shapes.tokenizer_dir())
    table = np.random.default_rng(0).normal(size=(tok.vocab_size, 8))
    direction_ids = [tok([d], 4).ids[0][1] for d in shapes.DIRECTIONS]
    table[direction_ids] = table[direction_ids[0]]  # every direction word reads the same

    def erased(prompts):
        return table[np.asarray(tok(prompts, 16).ids)]

    s = word_probe.text_sensitivity(erased, wanted)
    assert s["direction"] == 0.0 and min(s["color"], s["shape"], s["background"]) > 0.05

    import types

    import jax

    from emu_jax.config import load_config
    from emu_jax.models.emu import EmuConfig, EmuModel

    model = EmuModel(EmuConfig.from_dict(load_config("demo/shapes.py:t2i").model.to_dict()))
    loaded = types.SimpleNamespace(model=model, params=model.init(jax.random.key(0)))
    s = word_probe.text_sensitivity(lambda p: word_probe.model_contexts(loaded, p), wanted)
    assert min(s.values()) > 0.05, s


def test_word_use_finds_the_word_a_loss_reads():
    """A loss that reads only the direction word scores > 0 on direction and exactly 0 elsewhere."""
    from emu_jax.demo import evaluate

    wanted = evaluate.prompt_set(10, seed=3)
    videos = np.zeros((10, 2, 4, 4, 3), np.float32)

    def reads_direction(v, prompts):
        assert len(v) == len(prompts)
        return np.array([1.0 + 0.5 * ("moving right" not in p) for p in prompts])  # right is "correct"

    s = word_probe.word_use(reads_direction, videos, wanted, batch_size=4)
    assert s["color"] == s["shape"] == s["background"] == 0.0
    assert s["direction"] != 0.0
    with pytest.raises(ValueError, match="one attribute set per clip"):
        word_probe.word_use(reads_direction, videos[:3], wanted)


@pytest.mark.slow  # compiles and runs a model loss over several prompts (minutes on 2 busy cores)
def test_model_loss_fixes_the_noise_so_only_the_prompt_moves_it():
    import types

    import jax

    from emu_jax.config import load_config
    from emu_jax.demo import evaluate
    from emu_jax.diffusion.schedules import make_schedule
    from emu_jax.models.emu import EmuConfig, EmuModel

    cfg = load_config("demo/shapes.py:t2v,tiny")
    model = EmuModel(EmuConfig.from_dict(cfg.model.to_dict()))
    d = cfg.diffusion
    loaded = types.SimpleNamespace(
        model=model,
        params=model.init(jax.random.key(0)),
        task="t2v",
        prediction=d.prediction,
        schedule=make_schedule(
            d.beta_schedule, d.num_train_steps, d.beta_start, d.beta_end, zero_terminal_snr=d.zero_terminal_snr
        ),
    )
    videos, attrs = evaluate.real_clips(
        4, seed=0, resolution=cfg.model.resolution, num_frames=cfg.model.num_frames, fps=float(cfg.model.fps)
    )
    assert videos.shape == (4, cfg.model.num_frames, 16, 16, 3) and -1 <= videos.min() <= videos.max() <= 1
    loss = word_probe.model_loss(loaded)
    prompts = [shapes.caption(a) for a in attrs]
    a, b = np.asarray(loss(videos, prompts)), np.asarray(loss(videos, prompts))
    assert a.shape == (4,) and np.isfinite(a).all() and (a > 0).all()
    np.testing.assert_array_equal(a, b)
    s = word_probe.word_use(loss, videos, attrs)
    assert all(np.isfinite(v) for v in s.values()) and max(abs(v) for v in s.values()) > 0  # random text attention
    image = word_probe.model_loss(types.SimpleNamespace(**{**vars(loaded), "task": "t2i"}), timesteps=(999,))
    assert np.asarray(image(videos, prompts)).shape == (4,)
    with pytest.raises(ValueError, match="'interp'"):
        word_probe.model_loss(types.SimpleNamespace(**{**vars(loaded), "task": "interp"}))
    with pytest.raises(ValueError, match=r"timesteps \[1000\]"):
        word_probe.model_loss(loaded, timesteps=(10, 1000))


class _ReplayPipe:
    """A stand-in video stage that answers each given first frame with the real clip it came from, played
    forwards (a perfect F) or backwards (every motion reversed)."""

    def __init__(self, seed: int, num_clips: int, reverse: bool, start: str = "path"):
        from emu_jax.demo import evaluate

        cfg = types.SimpleNamespace(resolution=32, num_frames=8, fps=4)
        self.main = types.SimpleNamespace(model=types.SimpleNamespace(config=cfg))
        videos, _ = evaluate.real_clips(num_clips, seed, resolution=32, num_frames=8, fps=4.0, start=start)
        self.videos, self.reverse, self.calls = clips.from_unit_range(videos), reverse, []

    def run(self, prompts, *, seed, image, interpolate=True):
        self.calls.append((list(prompts), image.shape, interpolate))
        out = []
        for frame in image:
            # Nearest, not equal: H.264 round trips of the same clip can differ by a few levels.
            video = self.videos[np.argmin([np.abs(v[0].astype(int) - frame).mean() for v in self.videos])]
            out.append(types.SimpleNamespace(video=video[::-1] if self.reverse else video))
        yield out


def test_given_first_frame_scores_the_video_stage_on_real_first_frames():
    from emu_jax.demo import evaluate

    good = _ReplayPipe(seed=5, num_clips=6, reverse=False)
    s = evaluate.given_first_frame(good, 6, seed=5)
    assert s == {"given_first_frame_direction_accuracy": 1.0, "given_first_frame_consistent_fraction": 1.0}
    prompts, shape, interpolate = good.calls[0]
    assert interpolate is False  # only F's video is read: a loaded I must not run
    _, attrs = evaluate.real_clips(6, 5, resolution=32, num_frames=8, fps=4.0)
    assert prompts == [shapes.caption(a) for a in attrs] and shape == (6, 32, 32, 3)
    backwards = evaluate.given_first_frame(_ReplayPipe(seed=5, num_clips=6, reverse=True), 6, seed=5)
    assert backwards["given_first_frame_direction_accuracy"] == 0.0


def test_given_first_frame_on_free_start_clips():
    # Free starts: the first frame does not tell the direction, so the diagnostic measures the word alone.
    from emu_jax.demo import evaluate

    videos, attrs = evaluate.real_clips(8, 5, resolution=32, num_frames=8, fps=4.0, start="free")
    assert {a.speed for a in attrs} == {evaluate.OFF_PATH_SPEED[0]}
    path_attrs = evaluate.real_clips(8, 5, resolution=32, num_frames=8, fps=4.0)[1]
    assert [a.direction for a in attrs] == [a.direction for a in path_attrs]  # same draws, other starts
    assert [a.start_x for a in attrs] != [a.start_x for a in path_attrs]
    reads = [analyse.analyse_video(clips.from_unit_range(v)) for v in videos]
    assert [r["direction"] for r in reads] == [a.direction for a in attrs]  # the analyser's ceiling holds
    good = _ReplayPipe(seed=5, num_clips=8, reverse=False, start="free")
    s = evaluate.given_first_frame(good, 8, seed=5, start="free")
    assert s["given_first_frame_direction_accuracy"] == 1.0
    assert good.calls[0][0] == [shapes.caption(a) for a in attrs]
    _, one_look = evaluate.real_clips(
        3, 5, resolution=32, num_frames=8, fps=4.0, start="free", look=("red", "circle", "black")
    )
    assert {(a.color, a.shape, a.background) for a in one_look} == {("red", "circle", "black")}
    with pytest.raises(ValueError, match="start='edge'"):
        evaluate.run(num_prompts=1, clips_start="edge")


def test_ceiling_through_vae_reads_the_autoencoded_clips():
    # `through_vae` scores what the autoencoder returns, so a model's floor is measured apart from the clips.
    from emu_jax.demo import evaluate

    kw = dict(resolution=32, num_frames=8, fps=4.0, start="free")
    assert "through_vae" not in evaluate.ceiling(2, 5, **kw)
    same = evaluate.ceiling(6, 5, **kw, autoencode=lambda v: v)
    assert same.pop("through_vae") == same and same["direction_accuracy"] == 1.0
    backwards = evaluate.ceiling(6, 5, **kw, autoencode=lambda v: v[:, ::-1])
    assert backwards["through_vae"]["direction_accuracy"] == 0.0 and backwards["direction_accuracy"] == 1.0
