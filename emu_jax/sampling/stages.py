"""The sampling stages as pure functions: keyframe, video, interpolation, decode.

Each stage is `conditions -> noise -> guided denoising loop`, written so that
research code can call (and jit) one stage on its own or swap it, and so that
`emu_jax.sampling.pipeline.Pipeline` can run the same code in chunks of steps with
progress in between. Randomness is per item: `keys` (B,) come from
`item_keys(seed, prompt_indices)` and every stage folds in its own id, so an
item's noise depends only on (seed, prompt index, stage), never on its batch.

Conditioning batches follow `guidance.MODE_CONDITIONS`: the keyframe uses text
CFG over (empty prompt, prompt); video and interpolation use the two-condition
CFG over (no image + empty prompt, image + empty prompt, image + prompt), all
in one forward pass. "No image" is an all-zero conditioning (as `cond=None`
and as condition dropout in training).

Array names end in their layout (docs/unet.md "Shape names"): T frames, S slots
of an interpolated clip, R = B*halves rows (item-major) when I interpolates a
clip as two halves; a digit is an axis of that fixed size.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from emu_jax import conditioning
from emu_jax.diffusion import guidance as guidance_lib
from emu_jax.diffusion import samplers
from emu_jax.diffusion.samplers import SamplerState, SamplingPlan
from emu_jax.diffusion.schedules import Schedule

# Stage ids folded into an item's key; halves of an interpolated clip fold in their index too.
KEYFRAME, VIDEO, INTERP = 0, 1, 2
_X_T, _STEP_NOISE, _AUG_NOISE = 0, 1, 2


def item_keys(seed: int | jax.Array, indices: jax.Array) -> jax.Array:
    """(B,) keys `fold_in(key(seed), prompt_index)`: the only source of an item's randomness.

    `seed` is one seed or one per row (B,) (a server batches requests with their own seeds)."""
    indices = jnp.asarray(indices, jnp.int32)
    seeds = jnp.broadcast_to(jnp.asarray(seed, jnp.int32), indices.shape)
    return jax.vmap(lambda s, i: jax.random.fold_in(jax.random.key(s), i))(seeds, indices)


def fold(keys: jax.Array, data: int | jax.Array) -> jax.Array:
    """`fold_in` every key of a (B,) key array with the same `data`."""
    return jax.vmap(lambda k: jax.random.fold_in(k, data))(keys)


def normal(keys: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """(B, *shape) float32 standard normals, row b drawn from keys[b] alone."""
    return jax.vmap(lambda k: jax.random.normal(k, shape, jnp.float32))(keys)


def null_token_batch(model: Any) -> dict[str, jax.Array]:
    """The empty prompt's tokens (1, L_i) per text encoder, in `tokenize_all`'s layout."""
    out = {}
    for i, (ids, mask) in enumerate(model.null_tokens):
        out[f"text_ids_{i}"], out[f"text_mask_{i}"] = jnp.asarray(ids), jnp.asarray(mask)
    return out


def encode(model: Any, params: dict, tokens: Mapping[str, jax.Array], batch: int | None = None):
    """Contexts (B, L_i, D_i) and bool masks (B, L_i) per encoder; a 1-row `tokens` broadcasts to `batch`."""
    contexts, masks = [], []
    for i in range(len(model.config.text)):
        ids, mask = tokens[f"text_ids_{i}"], tokens[f"text_mask_{i}"].astype(bool)
        ctx = model.encode_text(params, ids, mask, i)
        if batch is not None and ctx.shape[0] != batch:
            ctx = jnp.broadcast_to(ctx, (batch,) + ctx.shape[1:])
            mask = jnp.broadcast_to(mask, (batch,) + mask.shape[1:])
        contexts.append(ctx)
        masks.append(mask)
    return tuple(contexts), tuple(masks)


def _stack(*parts):
    return guidance_lib.batch_conditions(*parts)


def keyframe_conditions(model: Any, params: dict, tokens: Mapping, uncond_tokens: Mapping) -> dict:
    """Text-CFG batch (2B): (uncond text, prompt), no image conditioning."""
    ctx, m = encode(model, params, tokens)
    nctx, nm = encode(model, params, uncond_tokens, ctx[0].shape[0])
    return {"contexts": _stack(nctx, ctx), "masks": _stack(nm, m), "cond": None, "level": None}


def two_condition_batch(
    model: Any, params: dict, tokens: Mapping, uncond_tokens: Mapping, cond: jax.Array, level: jax.Array | None = None
) -> dict:
    """Two-condition batch (3B): (no image + uncond text, image + uncond text, image + prompt).

    `cond` (B, T, h, w, C+1) is the conditioning of the image branches; `level` (B,) the
    conditioning noise level the interpolation model is told (same for all three branches,
    as in training where dropped conditionings keep their level).
    """
    ctx, m = encode(model, params, tokens)
    nctx, nm = encode(model, params, uncond_tokens, ctx[0].shape[0])
    return {
        "contexts": _stack(nctx, nctx, ctx),
        "masks": _stack(nm, nm, m),
        "cond": jnp.concatenate([jnp.zeros_like(cond), cond, cond], axis=0),
        "level": None if level is None else jnp.concatenate([level] * 3, axis=0),
    }


def video_conditions(
    model: Any, params: dict, tokens: Mapping, uncond_tokens: Mapping, keyframe_latent: jax.Array, num_frames: int
) -> dict:
    """Two-condition batch for F: the keyframe latent (B, 1, h, w, c) is frame 0's conditioning. None: no image
    in any branch (direct text-to-video; the image term of the guidance is then zero, leaving text CFG)."""
    if keyframe_latent is None:
        b = next(iter(tokens.values())).shape[0]
        h, w, c = latent_shape(model, 1)[1:]
        cond = jnp.zeros((b, num_frames, h, w, c + 1), jnp.float32)
    else:
        cond = conditioning.image_condition(keyframe_latent, num_frames)
    return two_condition_batch(model, params, tokens, uncond_tokens, cond)


def split_halves(video_BT: jax.Array, tokens: Mapping, keys: jax.Array, layout: conditioning.SlotLayout):
    """(B, halves*n, ...) video -> (B*halves, n, ...) rows (item-major), tokens repeated, keys folded
    with the half."""
    n, t = layout.num_given, video_BT.shape[1]
    if t % n or t // n not in (1, 2):
        raise ValueError(f"interpolation takes {n} or {2 * n} frames (layout {layout}), got {t}")
    halves = t // n
    b = video_BT.shape[0]
    rows_RT = video_BT.reshape((b * halves, n) + video_BT.shape[2:])
    rep = {k: jnp.repeat(v, halves, axis=0) for k, v in tokens.items()}
    half_keys = jax.vmap(lambda k: jax.vmap(lambda h: jax.random.fold_in(k, h))(jnp.arange(halves)))(keys)
    return rows_RT, rep, half_keys.reshape((b * halves,)), halves


def interp_conditions(
    model: Any,
    params: dict,
    tokens: Mapping,
    uncond_tokens: Mapping,
    given_BTHWC: jax.Array,
    keys: jax.Array,
    layout: conditioning.SlotLayout,
    schedule: Schedule,
    aug_level: int | jax.Array,
) -> dict:
    """Two-condition batch for I: the given frames (B, n, h, w, c) noise-augmented to `aug_level` (SPEC: 100)."""
    b = given_BTHWC.shape[0]
    level = jnp.full((b,), aug_level, jnp.int32)
    noise_BTHWC = normal(fold(keys, _AUG_NOISE), given_BTHWC.shape[1:])
    a_B = conditioning.augmentation_alpha_bar(jnp.asarray(schedule.alphas_cumprod), level)
    a_B1111 = a_B[:, None, None, None, None]
    augmented_BTHWC = jnp.sqrt(a_B1111) * given_BTHWC + jnp.sqrt(1.0 - a_B1111) * noise_BTHWC
    cond = conditioning.interpolation_condition(augmented_BTHWC, layout)
    return two_condition_batch(model, params, tokens, uncond_tokens, cond, level)


def start(plan: SamplingPlan, schedule: Schedule, keys: jax.Array, shape: tuple[int, ...]) -> SamplerState:
    """Initial sampler state from per-item noise (B, *shape) of the stage keys."""
    return samplers.init_state(plan, schedule, normal(fold(keys, _X_T), shape))


def denoise_steps(
    model: Any,
    params: dict,
    plan: SamplingPlan,
    schedule: Schedule,
    cond_batch: dict,
    state: SamplerState,
    keys: jax.Array,
    scales: Mapping[str, Any],
    i0: int | jax.Array,
    i1: int | jax.Array,
    *,
    mode: str,
    image_mode: bool = False,
    rescale_phi: float = 0.0,
    gather_per_step: bool = False,
    sequential_guidance: bool = False,
    unguided: bool = False,
) -> SamplerState:
    """Steps [i0, i1) of a guided sampler, one batched forward per step.

    A `fori_loop` with (possibly traced) bounds, so one compiled function serves
    any chunk of steps: the Pipeline reports progress between chunks.
    `gather_per_step` (for params sharded over fsdp): an optimisation barrier ties the
    params to each step's state, so XLA gathers each layer's weights inside the step
    instead of hoisting every gathered weight out of the loop, where they all stay live.
    `sequential_guidance`: the conditionings' forwards one after another (`guided_denoise_fn`).
    `unguided` (every scale 1): only the batch's last block, the full condition, runs (the guided output exactly).
    """
    if unguided:
        cond_batch, mode, scales = jax.tree.map(lambda a: a[-state.x.shape[0] :], cond_batch), "none", {}

    def model_fn(p, x, t, c):
        if gather_per_step and sequential_guidance:
            # the passes' loop is inside the step: without this tie to each pass's condition, XLA hoists the
            # weights' gathers out of it and every gathered weight stays live for the step (the paper's video
            # steps on v5e-8: 8.69 GiB of temporaries instead of ~3)
            p, c = jax.lax.optimization_barrier((p, c))
        return model.denoise(
            p,
            x,
            t,
            c["contexts"],
            cond=c["cond"],
            image_mode=image_mode,
            cond_level=c["level"],
            context_masks=c["masks"],
        )

    step_keys = fold(keys, _STEP_NOISE)
    shape = state.x.shape[1:]

    def body(i, st):
        p = params
        if gather_per_step:
            p, st = jax.lax.optimization_barrier((params, st))
        denoise = guidance_lib.guided_denoise_fn(
            functools.partial(model_fn, p),
            cond_batch,
            mode=mode,
            scales=scales,
            rescale_phi=rescale_phi,
            sequential=sequential_guidance,
        )
        noise = None
        if plan.stochastic:
            noise = jax.vmap(lambda k: samplers.step_noise(k, i, shape))(step_keys)
        x_in, t = samplers.model_input(plan, schedule, st, i)
        return samplers.step(plan, schedule, st, denoise(x_in, t), i, noise)

    return jax.lax.fori_loop(i0, i1, body, state)


def finish(plan: SamplingPlan, schedule: Schedule, state: SamplerState) -> jax.Array:
    """The VP-space sample after the last step."""
    return samplers.to_vp(plan, schedule, state.x, plan.num_steps)


def _uncond(model, uncond_tokens):
    return null_token_batch(model) if uncond_tokens is None else uncond_tokens


def latent_shape(model: Any, frames: int) -> tuple[int, ...]:
    cfg = model.config
    return (frames, cfg.latent_size, cfg.latent_size, cfg.unet.in_channels)


# How each stage is guided: (guidance mode, image_mode).
STAGE_MODES = {"keyframe": ("text", True), "video": ("two_condition", False), "interp": ("two_condition", False)}


def keyframe_start(
    model: Any,
    params: dict,
    tokens: Mapping,
    uncond_tokens: Mapping | None,
    keys: jax.Array,
    plan: SamplingPlan,
    schedule: Schedule,
):
    """(conditioning batch, initial state, stage keys) of the keyframe stage; `keys` are item keys."""
    cb = keyframe_conditions(model, params, tokens, _uncond(model, uncond_tokens))
    k = fold(keys, KEYFRAME)
    return cb, start(plan, schedule, k, latent_shape(model, 1)), k


def video_start(
    model: Any,
    params: dict,
    tokens: Mapping,
    uncond_tokens: Mapping | None,
    keys: jax.Array,
    plan: SamplingPlan,
    schedule: Schedule,
    keyframe_latent: jax.Array,
    num_frames: int | None = None,
):
    """As `keyframe_start` for F's video stage, conditioned on the keyframe latent (B, 1, h, w, c) or None."""
    t = num_frames or model.config.num_frames
    cb = video_conditions(model, params, tokens, _uncond(model, uncond_tokens), keyframe_latent, t)
    k = fold(keys, VIDEO)
    return cb, start(plan, schedule, k, latent_shape(model, t)), k


def interp_start(
    model: Any,
    params: dict,
    tokens: Mapping,
    uncond_tokens: Mapping | None,
    keys: jax.Array,
    plan: SamplingPlan,
    schedule: Schedule,
    video_latent: jax.Array,
    layout: conditioning.SlotLayout,
    aug_level: int | jax.Array = 100,
):
    """As `keyframe_start` for model I; rows are (item, half), so the batch is R = B * halves."""
    rows_RT, rep, row_keys, _ = split_halves(video_latent, tokens, keys, layout)
    k = fold(row_keys, INTERP)
    cb = interp_conditions(model, params, rep, _uncond(model, uncond_tokens), rows_RT, k, layout, schedule, aug_level)
    return cb, start(plan, schedule, k, latent_shape(model, layout.num_slots)), k


def _run_all(name, model, params, plan, schedule, started, scales, rescale_phi):
    cb, state, k = started
    mode, image_mode = STAGE_MODES[name]
    state = denoise_steps(
        model,
        params,
        plan,
        schedule,
        cb,
        state,
        k,
        scales,
        0,
        plan.num_steps,
        mode=mode,
        image_mode=image_mode,
        rescale_phi=rescale_phi,
    )
    return finish(plan, schedule, state)


def generate_keyframe(
    model: Any,
    params: dict,
    tokens: Mapping,
    keys: jax.Array,
    schedule: Schedule,
    plan: SamplingPlan,
    *,
    guidance: float | jax.Array = 7.5,
    uncond_tokens: Mapping | None = None,
    rescale_phi: float = 0.0,
) -> jax.Array:
    """Keyframe latents (B, 1, h, w, c): F in image mode (no temporal layers), text CFG `guidance`."""
    started = keyframe_start(model, params, tokens, uncond_tokens, keys, plan, schedule)
    return _run_all("keyframe", model, params, plan, schedule, started, {"text": guidance}, rescale_phi)


def generate_video(
    model: Any,
    params: dict,
    tokens: Mapping,
    keyframe_latent: jax.Array,
    keys: jax.Array,
    schedule: Schedule,
    plan: SamplingPlan,
    *,
    w_image: float | jax.Array = 2.0,
    w_text: float | jax.Array = 7.5,
    uncond_tokens: Mapping | None = None,
    num_frames: int | None = None,
    rescale_phi: float = 0.0,
) -> jax.Array:
    """Video latents (B, T, h, w, c) from the keyframe latent (B, 1, h, w, c) and text (SPEC Eq.)."""
    started = video_start(model, params, tokens, uncond_tokens, keys, plan, schedule, keyframe_latent, num_frames)
    return _run_all("video", model, params, plan, schedule, started, {"image": w_image, "text": w_text}, rescale_phi)


def interpolate(
    model: Any,
    params: dict,
    tokens: Mapping,
    video_latent: jax.Array,
    keys: jax.Array,
    schedule: Schedule,
    plan: SamplingPlan,
    layout: conditioning.SlotLayout,
    *,
    w_image: float | jax.Array = 2.0,
    w_text: float | jax.Array = 7.5,
    aug_level: int = 100,
    uncond_tokens: Mapping | None = None,
    rescale_phi: float = 0.0,
) -> jax.Array:
    """Model I: (B, n, ...) -> (B, num_slots, ...); (B, 2n, ...) -> two halves stitched (SPEC: 16 -> 65)."""
    started = interp_start(model, params, tokens, uncond_tokens, keys, plan, schedule, video_latent, layout, aug_level)
    scales = {"image": w_image, "text": w_text}
    rows_RS = _run_all("interp", model, params, plan, schedule, started, scales, rescale_phi)
    return join_halves(rows_RS, video_latent.shape[1] // layout.num_given, layout)


def join_halves(rows_RS: jax.Array, halves: int, layout: conditioning.SlotLayout) -> jax.Array:
    """(B*halves, S, ...) interpolated rows -> (B, S, ...) or, for two halves, the stitched clip."""
    if halves == 1:
        return rows_RS
    rows_B2S = rows_RS.reshape((-1, 2) + rows_RS.shape[1:])
    return conditioning.stitch_halves(rows_B2S[:, 0], rows_B2S[:, 1], layout)


def decode(model: Any, params: dict, latents: jax.Array, chunk: int = 8) -> jax.Array:
    """Latents (B, T, h, w, c) -> pixels (B, T, H, W, 3) in [-1, 1], the VAE run frame by frame."""
    return model.decode_video(params, latents, chunk)
