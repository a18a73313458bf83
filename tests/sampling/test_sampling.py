"""Sampling API on tiny random models: shapes, reproducibility, batch independence, conditioning, guidance."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax import conditioning
from emu_jax.diffusion import guidance, samplers
from emu_jax.sampling import stages
from emu_jax.sampling.pipeline import Pipeline
from emu_jax.sampling.settings import Settings, validate_prompts
from sampling_helpers import LAYOUT

STEPS = 2
LONG = "a very long prompt about a small red circle drifting slowly to the left " * 4  # > 64 byte tokens
PROMPTS = ["red circle", LONG, "blue square moving up"]
H = 16  # latent size of the 32 px tiny model (VAE factor 2)


@pytest.fixture(scope="module")
def pipe(f_model, i_model):
    return Pipeline(f_model, Settings(num_steps=STEPS), interp=i_model, batch_size=2, progress=False)


@pytest.fixture(scope="module")
def mixed(pipe):
    with pytest.warns(UserWarning, match="truncated"):
        return [s for batch in pipe.run(PROMPTS, seed=3) for s in batch]


@pytest.mark.slow
def test_pipeline_shapes_fps_and_stitching(pipe, mixed):
    lay = conditioning.SlotLayout(**LAYOUT)
    assert [s.index for s in mixed] == [0, 1, 2] and [s.prompt for s in mixed] == PROMPTS
    assert pipe.mesh.shape["data"] == 2  # the batch of 2 is split over 2 of the 8 test devices
    for s in mixed:
        assert s.keyframe.shape == (32, 32, 3) and s.keyframe.dtype == np.uint8
        assert s.video.shape == (8, 32, 32, 3) and s.fps == 8
        # two halves of 9 slots, overlap dropped: (last + factor) + (last + 1 - pad); SPEC: 36 + 29 = 65
        expect = lay.given_slots[-1] + lay.factor + lay.given_slots[-1] + 1 - lay.pad
        assert s.interpolated.shape == (expect, 32, 32, 3) == (16, 32, 32, 3) and s.interp_fps == 16
        assert s.stages == ["keyframe", "video", "interp", "decode"]
        assert s.latents["keyframe"].shape == (1, H, H, 4) and s.latents["video"].shape == (8, H, H, 4)
    assert not np.array_equal(mixed[0].video, mixed[2].video)  # different prompts / noise
    # interpolate=False: F's video only, identical to the full run's, from a pipeline that holds I.
    f_only = next(pipe.run(PROMPTS[:1], seed=3, interpolate=False))[0]
    assert f_only.interpolated is None and f_only.stages == ["keyframe", "video", "decode"]
    np.testing.assert_array_equal(f_only.video, mixed[0].video)


@pytest.mark.slow
def test_given_video_is_interpolated_by_i_alone(pipe, mixed, f_model):
    """`run(video=)`: I on the caller's frames (their VAE latents), with no keyframe or video stage."""
    frames = np.stack([mixed[0].video, mixed[2].video])
    out = [s for b in pipe.run(PROMPTS[::2], seed=3, video=frames) for s in b]
    enc = jax.jit(f_model.model.encode_video)(f_model.params, frames.astype(np.float32) / 127.5 - 1.0)
    for s, z in zip(out, np.asarray(enc)):
        assert s.stages == ["encode_video", "interp", "decode"] and "keyframe" not in s.latents
        assert s.interpolated.shape == mixed[0].interpolated.shape and s.interp_fps == 16
        np.testing.assert_allclose(s.latents["video"], z, atol=1e-5)
    assert not np.array_equal(out[0].interpolated, out[1].interpolated)
    again = next(pipe.run(PROMPTS[:1], seed=3, video=frames[:1]))[0]
    np.testing.assert_array_equal(again.interpolated, out[0].interpolated)
    with pytest.raises(ValueError, match=r"video must be uint8 \(1, 8, 32, 32, 3\)"):
        next(pipe.run(PROMPTS[:1], video=frames[:1, :4]))
    with pytest.raises(ValueError, match="needs an interpolation model loaded and no image"):
        next(pipe.run(PROMPTS[:1], video=frames[:1], image=frames[0, 0]))


@pytest.mark.slow  # ~16 s: the whole pipeline with interpolation, three times
def test_same_seed_reproduces_and_item_does_not_depend_on_batch(pipe, mixed):
    again = [s for b in pipe.run(PROMPTS[:2], seed=3) for s in b]
    for a, b in zip(again, mixed[:2]):
        np.testing.assert_array_equal(a.interpolated, b.interpolated)
        np.testing.assert_array_equal(a.keyframe, b.keyframe)
    # Item 1 (the long prompt) alone, in position 0 of its batch, vs inside the mixed batch.
    with pytest.warns(UserWarning, match="truncated"):
        alone = next(pipe.run([LONG], seed=3, indices=[1]))[0]
    for k in ("keyframe", "video", "interp"):
        np.testing.assert_allclose(alone.latents[k], mixed[1].latents[k], atol=1e-5, rtol=0)
    assert np.abs(alone.video.astype(int) - mixed[1].video.astype(int)).max() <= 1
    other_seed = next(pipe.run([LONG], seed=4, indices=[1]))[0]
    assert np.abs(other_seed.latents["video"] - mixed[1].latents["video"]).max() > 1e-2


class Spy:
    """Wraps an EmuModel and records the keyword arguments `denoise` receives (traced under eval_shape)."""

    def __init__(self, model):
        self.model, self.calls = model, []
        self.config, self.null_tokens = model.config, model.null_tokens

    def encode_text(self, *a):
        return self.model.encode_text(*a)

    def denoise(self, params, x, t, contexts, **kw):
        self.calls.append(dict(x_shape=x.shape, **kw))
        return self.model.denoise(params, x, t, contexts, **kw)


def _tokens(model, prompts):
    return {k: jnp.asarray(v) for k, v in model.tokenize_all(prompts).items()}


@pytest.mark.slow  # ~10 s: compiles the keyframe and video stages
def test_video_stage_receives_exactly_the_keyframe_latent(f_model):
    m, p, sched = f_model.model, f_model.params, f_model.schedule
    plan = samplers.make_plan(sched, method="ddim", num_steps=1, prediction=f_model.prediction, spacing="trailing")
    tok, keys = _tokens(m, ["a", "b"]), stages.item_keys(0, jnp.arange(2))
    kf = jax.random.normal(jax.random.key(5), (2, 1, H, H, 4))
    spy = Spy(m)  # what the U-Net is called with in each stage (tracing only, nothing compiles)
    jax.eval_shape(lambda: stages.generate_keyframe(spy, p, tok, keys, sched, plan))
    jax.eval_shape(lambda: stages.generate_video(spy, p, tok, kf, keys, sched, plan))
    key_call, vid_call = spy.calls
    assert key_call["image_mode"] is True and key_call["cond"] is None and key_call["x_shape"] == (4, 1, H, H, 4)
    assert vid_call["image_mode"] is False and vid_call["cond"].shape == (6, 8, H, H, 5)
    # The values: the conditioning batch generate_video builds (video_start) around the keyframe latent.
    cb, _, _ = jax.jit(lambda kf: stages.video_start(m, p, tok, None, keys, plan, sched, kf))(kf)
    cond = np.asarray(cb["cond"]).reshape(3, 2, 8, H, H, 5)  # (none, image, full) x B
    np.testing.assert_array_equal(cond[1, :, 0, ..., :4], np.asarray(kf[:, 0]))  # exactly the latent
    np.testing.assert_array_equal(cond[2], cond[1])
    assert np.all(cond[1, :, 1:, ..., :4] == 0) and np.all(cond[0] == 0)
    np.testing.assert_array_equal(cond[1, 0, :, 0, 0, 4], [1, 0, 0, 0, 0, 0, 0, 0])
    # contexts: (empty prompt, empty prompt, prompt) per item
    ctx = np.asarray(cb["contexts"][0]).reshape((3, 2) + cb["contexts"][0].shape[1:])
    np.testing.assert_array_equal(ctx[0], ctx[1])
    assert np.abs(ctx[2] - ctx[1]).max() > 1e-3


@pytest.fixture(scope="module")
def plan(f_model):
    return samplers.make_plan(
        f_model.schedule, method="ddim", num_steps=STEPS, prediction=f_model.prediction, spacing="trailing"
    )


@pytest.fixture(scope="module")
def keyframe_fn(f_model, plan):
    m = f_model.model
    return jax.jit(
        lambda params, tok, keys, w: stages.generate_keyframe(m, params, tok, keys, f_model.schedule, plan, guidance=w)
    )


def test_keyframe_never_runs_temporal_layers(f_model, keyframe_fn):
    m = f_model.model
    tok, keys = _tokens(m, ["red circle", "blue"]), stages.item_keys(1, jnp.arange(2))
    base = keyframe_fn(f_model.params, tok, keys, 7.5)
    perturbed = jax.tree_util.tree_map_with_path(
        lambda path, x: x + 1.0 if "temporal" in jax.tree_util.keystr(path) else x, f_model.params
    )
    n_temporal = sum(
        "temporal" in jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(f_model.params)
    )
    assert n_temporal > 4
    np.testing.assert_array_equal(np.asarray(keyframe_fn(perturbed, tok, keys, 7.5)), np.asarray(base))


def test_keyframe_guidance_is_the_one_condition_formula(f_model, keyframe_fn, plan):
    m, p, sched = f_model.model, f_model.params, f_model.schedule
    tok, keys = _tokens(m, ["red circle", "blue"]), stages.item_keys(1, jnp.arange(2))
    w = 3.0
    ours = keyframe_fn(p, tok, keys, w)
    ctx, mask = stages.encode(m, p, tok)
    nctx, nmask = stages.encode(m, p, stages.null_token_batch(m), 2)

    def by_hand(x, t):  # two separate forwards, combined as uncond + w (cond - uncond)
        cond = m.denoise(p, x, t, ctx, image_mode=True, context_masks=mask)
        uncond = m.denoise(p, x, t, nctx, image_mode=True, context_masks=nmask)
        return uncond + w * (cond - uncond)

    x_T = stages.normal(stages.fold(stages.fold(keys, stages.KEYFRAME), 0), (1, H, H, 4))
    ref = jax.jit(
        lambda x: samplers.sample(
            by_hand, x, sched, method="ddim", num_steps=STEPS, prediction=f_model.prediction, spacing="trailing"
        )
    )(x_T)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=2e-5, rtol=1e-5)


def test_two_condition_with_unit_scales_is_the_conditional_model(f_model, plan):
    m, p, sched = f_model.model, f_model.params, f_model.schedule
    tok, keys = _tokens(m, ["red circle", "blue"]), stages.item_keys(2, jnp.arange(2))
    kf = jax.random.normal(jax.random.key(9), (2, 1, H, H, 4))
    ours = jax.jit(lambda kf: stages.generate_video(m, p, tok, kf, keys, sched, plan, w_image=1.0, w_text=1.0))(kf)
    ctx, mask = stages.encode(m, p, tok)
    cond = conditioning.image_condition(kf, 8)
    x_T = stages.normal(stages.fold(stages.fold(keys, stages.VIDEO), 0), (8, H, H, 4))
    plain = guidance.guided_denoise_fn(
        lambda x, t, c: m.denoise(p, x, t, ctx, cond=c, context_masks=mask), cond, mode="none"
    )
    ref = jax.jit(
        lambda x: samplers.sample(
            plain, x, sched, method="ddim", num_steps=STEPS, prediction=f_model.prediction, spacing="trailing"
        )
    )(x_T)
    err = float(jnp.abs(ours - ref).max())
    print(f"w_i = w_p = 1 vs conditional model: max |diff| = {err:.2e}")
    assert err < 1e-4
    assert float(jnp.abs(ref).max()) > 0.1  # a real signal, not two zeros


def test_interpolation_layout_frame_counts(i_model):
    m, p, sched, lay = i_model.model, i_model.params, i_model.schedule, i_model.layout
    plan = samplers.make_plan(sched, method="ddim", num_steps=1, prediction=i_model.prediction, spacing="trailing")
    tok, keys = _tokens(m, ["x"]), stages.item_keys(0, jnp.arange(1))
    video = jax.random.normal(jax.random.key(1), (1, 4, H, H, 4))  # num_given frames: one pass
    one = jax.eval_shape(lambda v: stages.interpolate(m, p, tok, v, keys, sched, plan, lay), video)
    two = jax.eval_shape(lambda v: stages.interpolate(m, p, tok, v, keys, sched, plan, lay), jnp.zeros((1, 8, H, H, 4)))
    assert one.shape == (1, lay.num_slots, H, H, 4) == (1, 9, H, H, 4)
    assert two.shape == (1, 16, H, H, 4)  # two halves stitched: 9 + 7
    cb, _, _ = jax.jit(lambda v: stages.interp_start(m, p, tok, None, keys, plan, sched, v, lay, 100))(video)
    np.testing.assert_array_equal(np.asarray(cb["level"]), [100, 100, 100])
    c = np.asarray(cb["cond"])
    np.testing.assert_array_equal(c[1, :, 0, 0, 4], lay.mask())
    assert np.all(c[0] == 0)
    # the given slots hold the noise-augmented frames (level 100): sqrt(a) x + sqrt(1 - a) noise
    given = c[1, lay.given_slots, ..., :4]
    a = float(conditioning.augmentation_alpha_bar(jnp.asarray(sched.alphas_cumprod), jnp.int32(100)))
    resid = (given - np.sqrt(a) * np.asarray(video[0])) / np.sqrt(1 - a)
    assert 0.8 < resid.std() < 1.2 and np.all(c[1, 0, ..., :4] == 0)
    with pytest.raises(ValueError, match="takes 4 or 8 frames"):
        stages.split_halves(jnp.zeros((1, 6, H, H, 4)), tok, keys, lay)


def test_one_first_frame_per_prompt_matches_each_run_alone(f_model):
    """A batch of first frames (3 prompts over batches of 2, so one batch is padded): each item gets its own
    image, and its video equals that image given alone."""
    pipe = Pipeline(f_model, Settings(num_steps=STEPS), batch_size=2, progress=False)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    prompts = ["red circle", "blue square", "green triangle"]
    batched = [s for b in pipe.run(prompts, seed=3, image=images) for s in b]
    for i, s in enumerate(batched):
        alone = next(pipe.run([prompts[i]], seed=3, indices=[i], image=images[i]))[0]
        np.testing.assert_array_equal(s.keyframe, images[i])
        assert s.stages == ["encode_image", "video", "decode"]
        np.testing.assert_allclose(s.latents["video"], alone.latents["video"], atol=1e-5, rtol=0)
    assert np.abs(batched[0].latents["video"] - batched[1].latents["video"]).max() > 1e-2
    with pytest.raises(ValueError, match=r"or \(3, 32, 32, 3\) for one per prompt"):
        next(pipe.run(prompts, image=images[:2]))


def test_t2i_checkpoint_gives_keyframes_only(f_model):
    t2i = dataclasses.replace(f_model, task="t2i")
    pipe = Pipeline(t2i, Settings(num_steps=STEPS), batch_size=2, progress=False)
    s = next(pipe.run(["red circle"], seed=3))[0]
    assert s.video is None and s.interpolated is None and s.stages == ["keyframe", "decode"]
    assert any("keyframe only" in n for n in s.notes + pipe.notes)
    assert s.keyframe.shape == (32, 32, 3)


def test_pipeline_refuses_wrong_models_and_settings(f_model, i_model):
    with pytest.raises(ValueError, match="pass it as the interpolation model"):
        Pipeline(i_model, Settings(num_steps=2))
    with pytest.raises(ValueError, match="not an interpolation model"):
        Pipeline(f_model, Settings(num_steps=2), interp=f_model)
    with pytest.raises(ValueError, match="unknown sampling method 'heun'"):
        Pipeline(f_model, Settings(method="heun"))
    with pytest.raises(ValueError, match="guidance keyframe must be a finite number >= 0, got inf"):
        Pipeline(f_model, Settings(guidance_keyframe=float("inf")))
    with pytest.raises(ValueError, match="unknown param_dtype 'float16'; allowed: stored, float32, bfloat16"):
        Pipeline(f_model, Settings(param_dtype="float16"))
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        validate_prompts(["ok", ""])


def test_bfloat16_weights_sample_close_to_the_stored_float32_ones(f_model):
    """param_dtype=bfloat16 casts every floating weight once at load (half the memory) and the keyframe
    stays close to the float32 weights' one; 'stored' keeps the checkpoint's dtypes."""
    t2i = dataclasses.replace(f_model, task="t2i")  # the keyframe stage alone: the cast is the same for every stage
    stored = Pipeline(t2i, Settings(num_steps=STEPS), batch_size=1, progress=False)
    half = Pipeline(t2i, Settings(num_steps=STEPS, param_dtype="bfloat16"), batch_size=1, progress=False)
    assert {x.dtype for x in jax.tree.leaves(stored.params)} == {jnp.dtype("float32")}
    assert {x.dtype for x in jax.tree.leaves(half.params)} == {jnp.dtype(jnp.bfloat16)}
    assert {x.dtype for x in jax.tree.leaves(f_model.params)} == {jnp.dtype("float32")}  # the loaded model untouched
    a = next(stored.run(["red circle"], seed=3))[0].latents["keyframe"]
    b = next(half.run(["red circle"], seed=3))[0].latents["keyframe"]
    assert 0 < np.abs(a - b).max() < 0.1 * np.abs(a).max(), np.abs(a - b).max()


@pytest.mark.slow  # ~15 s: the whole pipeline with interpolation, batched and sequential
def test_sequential_guidance_passes_give_the_batched_sample(pipe, mixed, f_model, i_model):
    """guidance_passes=sequential (a third of the activation memory) is the same computation as one
    batched forward: every stage's latents agree up to float reordering."""
    seq = Pipeline(
        f_model, Settings(num_steps=STEPS, guidance_passes="sequential"), interp=i_model, batch_size=2, progress=False
    )
    got = next(seq.run(PROMPTS[:1], seed=3))[0]
    for stage in ("keyframe", "video", "interp"):
        a, b = got.latents[stage], mixed[0].latents[stage]
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-4 * max(1.0, np.abs(b).max()), stage
    with pytest.raises(ValueError, match="unknown guidance_passes 'parallel'; allowed: batched, sequential"):
        Pipeline(f_model, Settings(guidance_passes="parallel"))


@pytest.mark.slow
def test_direct_text_to_video_skips_the_keyframe_and_sees_no_image(f_model):
    """video_from=text (F trained with the image dropped): no keyframe stage, and every guidance branch has an
    empty image, so the image scale cannot change the video (in the factorised pipeline it does)."""
    videos = {}
    for source in ("text", "keyframe"):
        for w_image in (0.0, 5.0):
            p = Pipeline(
                f_model,
                Settings(num_steps=STEPS, guidance_image=w_image, video_from=source),
                batch_size=1,
                progress=False,
            )
            s = next(p.run(["red circle"], seed=3))[0]
            videos[source, w_image] = s.video
            if source == "text":
                assert s.stages == ["video", "decode"] and "keyframe" not in s.latents
                assert s.video.shape == (f_model.model.config.num_frames, 32, 32, 3)
                np.testing.assert_array_equal(s.keyframe, s.video[0])
    np.testing.assert_array_equal(videos["text", 0.0], videos["text", 5.0])
    assert np.abs(videos["keyframe", 0.0].astype(int) - videos["keyframe", 5.0]).max() > 0
    with pytest.raises(ValueError, match="unknown video_from 'image'; allowed: keyframe, text"):
        Pipeline(f_model, Settings(video_from="image"))
    direct = Pipeline(f_model, Settings(num_steps=STEPS, video_from="text"), progress=False)
    with pytest.raises(ValueError, match="video_from is 'text'"):
        next(direct.run(["red circle"], image=np.zeros((32, 32, 3), np.uint8)))


@pytest.mark.slow
def test_ablate_context_scores_the_interpolated_video_of_f_video(f_model, i_model, tmp_path, monkeypatch):
    """`EvalContext.sample(interp=I)`: one run gives I's video and F's (cached for F-only metrics, and equal
    to an F-only run's, the noise being the item's alone)."""
    from emu_jax.ablate.metrics import EvalContext
    from sampling_helpers import save

    f_path, i_path = save(f_model, str(tmp_path / "f")), save(i_model, str(tmp_path / "i"))
    settings = {"seed": 5, "batch_size": 2, "sampling": {"num_steps": STEPS}}
    ctx = EvalContext(None, f_path, settings)
    prompts = ["red circle", "blue square"]
    runs = []
    real_run = Pipeline.run
    monkeypatch.setattr(Pipeline, "run", lambda self, *a, **k: runs.append(k["interpolate"]) or real_run(self, *a, **k))
    interpolated = ctx.sample(prompts, interp=i_path)
    assert interpolated.shape == (2, 16, 32, 32, 3) and interpolated.dtype == np.uint8  # two halves stitched
    f_videos = ctx.sample(prompts)
    assert runs == [True] and f_videos.shape == (2, 8, 32, 32, 3)  # F's videos came from the same run
    np.testing.assert_array_equal(EvalContext(None, f_path, settings).sample(prompts), f_videos)
    assert runs == [True, False]


@pytest.mark.slow  # ~25 s: the whole pipeline with interpolation, unguided and forced through the guided path
def test_unit_guidance_runs_one_forward_per_step_and_gives_the_guided_sample(f_model, i_model, monkeypatch):
    """Every scale 1: each stage runs only its fully conditioned rows (a third of I's work), and the result is
    the three-row guided computation's up to float reordering."""
    ones = Settings(num_steps=STEPS, guidance_keyframe=1.0, guidance_image=1.0, guidance_text=1.0)
    assert ones.unguided() == ("keyframe", "video", "interp") and Settings().unguided() == ()
    rows = []
    denoise = type(f_model.model).denoise

    def counting(self, params, x, *a, **k):
        rows.append(x.shape[0])  # traced once per compiled program
        return denoise(self, params, x, *a, **k)

    monkeypatch.setattr(type(f_model.model), "denoise", counting)
    fast = next(Pipeline(f_model, ones, interp=i_model, batch_size=2, progress=False).run(PROMPTS[:2], seed=3))
    fast_rows, rows[:] = list(rows), []
    monkeypatch.setattr(Settings, "unguided", lambda self: ())
    slow = next(Pipeline(f_model, ones, interp=i_model, batch_size=2, progress=False).run(PROMPTS[:2], seed=3))
    # keyframe, video: 2 items; I: 2 items x 2 halves; the guided path batches 2 and 3 conditions.
    assert fast_rows == [2, 2, 4] and rows == [4, 6, 12], (fast_rows, rows)
    for a, b in zip(fast, slow):
        for stage in ("keyframe", "video", "interp"):
            x, y = a.latents[stage], b.latents[stage]
            assert np.abs(x - y).max() < 1e-4 * max(1.0, np.abs(y).max()), stage
