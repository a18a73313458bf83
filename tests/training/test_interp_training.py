"""Interpolation model I: trains on slot-interleaved clips, and sees the augmentation level."""

import jax
import jax.numpy as jnp
import pytest

from emu_jax import conditioning
from emu_jax.diffusion import samplers
from emu_jax.sampling import stages
from emu_jax.training import loop
from emu_test_utils import tiny_config
from train_helpers import fixed_batch_loss_before_after


@pytest.mark.slow  # trains a tiny interpolation model (~50 s)
def test_tiny_interpolation_model_learns_and_keeps_given_frames(tiny_shapes_dir):
    """Brief training lowers I's loss, and its sampled clip moves towards the given frames."""
    cfg = tiny_config(
        tiny_shapes_dir, "interp", train__batch_size=4, train__optimizer__lr=3e-3, train__optimizer__warmup_steps=0
    )
    _, schedule, spec = loop.build(cfg)
    layout = spec.layout
    assert layout.num_slots == cfg.data.num_frames == 9
    before, after, batch, run, params0, params = fixed_batch_loss_before_after(cfg, steps=30)
    assert batch["video"].shape[1] == 9
    print(f"interp fixed-draw loss before {before:.4f} after 30 steps {after:.4f}")
    assert after < 0.95 * before

    # Sample 9 slots from the 4 given frames of the training clips (DDIM, 8 steps, SPEC's level 100).
    model = run.model
    latents = jax.jit(model.encode_video)(params, batch["video"])
    given = conditioning.given_frames(latents, layout)
    tokens = {k: v for k, v in batch.items() if k.startswith("text_")}
    plan = samplers.make_plan(schedule, method="ddim", num_steps=8, prediction=spec.prediction, spacing="trailing")
    keys = stages.item_keys(0, jnp.arange(given.shape[0]))

    def given_slot_error(p):
        out = jax.jit(
            lambda p: stages.interpolate(model, p, tokens, given, keys, schedule, plan, layout, w_image=1.0, w_text=1.0)
        )(p)
        assert out.shape == latents.shape
        return float(jnp.sqrt(jnp.mean((conditioning.given_frames(out, layout) - given) ** 2)))

    untrained, trained = given_slot_error(params0), given_slot_error(params)
    scale = float(jnp.sqrt(jnp.mean(given**2)))
    print(f"RMS error at given slots: untrained {untrained:.3f}, after 30 steps {trained:.3f} (latent RMS {scale:.3f})")
    assert trained < untrained


@pytest.mark.slow
def test_augmentation_level_reaches_the_model(tiny_shapes_dir):
    """With a trained (non-zero) level embedding, the same inputs at levels 0 and 100 differ."""
    cfg = tiny_config(tiny_shapes_dir, "interp")
    emu_cfg, _, spec = loop.build(cfg)
    from emu_jax.models.emu import EmuModel

    model = EmuModel(emu_cfg)
    params = model.init(jax.random.key(0))
    assert "cond_level_embed" in params["unet"]
    params["unet"]["cond_level_embed"] = jax.tree.map(lambda p: p + 0.1, params["unet"]["cond_level_embed"])
    x = jax.random.normal(jax.random.key(1), (1, spec.layout.num_slots, 16, 16, 4))
    given = jax.random.normal(jax.random.key(2), (1, spec.layout.num_given, 16, 16, 4))
    cond = conditioning.interpolation_condition(given, spec.layout)
    ctx, masks = model.batch_contexts(params, model.tokenize_all(["a red circle moving left"]))
    out = [
        model.denoise(params, x, jnp.array([500]), ctx, cond=cond, cond_level=jnp.array([lvl]), context_masks=masks)
        for lvl in (0, 100)
    ]
    assert float(jnp.abs(out[0] - out[1]).max()) > 1e-4


def test_given_latents_in_the_batch_replace_the_clips_own_given_frames(tiny_shapes_dir):
    """A batch's `given_latents` (e.g. F's rendering of the clip) is what I is conditioned on; the target stays
    the clip: the clip's own given frames there give the default loss exactly, other frames another loss."""
    from emu_jax.models.emu import EmuModel
    from emu_jax.training.step import loss_fn

    cfg = tiny_config(tiny_shapes_dir, "interp")
    emu_cfg, schedule, spec = loop.build(cfg)
    model = EmuModel(emu_cfg)
    params = model.init(jax.random.key(0))
    # the conditioning conv starts at zero; make the given frames matter
    params["unet"]["conv_in_cond"] = jax.tree.map(lambda p: p + 0.05, params["unet"]["conv_in_cond"])
    latents = jax.random.normal(jax.random.key(1), (2, spec.layout.num_slots, 16, 16, 4))
    batch = {"latents": latents, **model.tokenize_all(["a red circle moving left", "a blue square moving up"])}
    own = conditioning.given_frames(latents, spec.layout)

    def loss(b):
        return float(jax.jit(lambda b: loss_fn(model, schedule, spec, params, b, jax.random.key(3))[0])(b))

    default = loss(batch)
    assert loss({**batch, "given_latents": own}) == default
    other = loss({**batch, "given_latents": own + jax.random.normal(jax.random.key(4), own.shape)})
    assert abs(other - default) > 1e-4 * default, (default, other)
