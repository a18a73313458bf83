"""Does the model read each caption word? Word-swap probes of the text contexts and of the model's loss.

`text_sensitivity`: relative change of the text contexts when one attribute's word is swapped;
`word_use`: relative rise of the model's own loss on real clips when that word is swapped, noise fixed.
"""

from __future__ import annotations

import types
from typing import Sequence

import numpy as np

from emu_jax import conditioning
from emu_jax.demo import shapes

ATTRIBUTE_WORDS = {
    "color": tuple(shapes.COLORS),
    "shape": shapes.SHAPES,
    "direction": tuple(shapes.DIRECTIONS),
    "background": tuple(shapes.BACKGROUNDS),
}


def swap_word(wanted: Sequence, field: str) -> list:
    """Each prompt's attributes with `field` replaced by the next allowed word. Namespaces, not
    ShapeAttrs: `shapes.caption` only reads the attribute words, so path checks are skipped."""
    words, out = ATTRIBUTE_WORDS[field], []
    for w in wanted:
        d = w.to_dict()
        out.append(types.SimpleNamespace(**{**d, field: words[(words.index(d[field]) + 1) % len(words)]}))
    return out


def text_sensitivity(encode, wanted: Sequence[shapes.ShapeAttrs]) -> dict:
    """How much the text contexts change when one attribute's word is swapped, per attribute.

    `encode(prompts) -> (B, ...)` contexts. For each prompt and attribute, the
    word is replaced by the next allowed value; the score is the mean of
    |ctx(swapped) - ctx| / |ctx| over prompts. An attribute near 0 is one the
    text encoder has erased: no later layer can follow it (this is how the
    demo's collapsed direction words were found, docs/demo.md).
    """
    base = np.asarray(encode([shapes.caption(w) for w in wanted]), np.float32)
    norm = np.linalg.norm(base.reshape(len(wanted), -1), axis=-1)
    out = {}
    for field in ATTRIBUTE_WORDS:
        ctx = np.asarray(encode([shapes.caption(w) for w in swap_word(wanted, field)]), np.float32)
        out[field] = float(np.mean(np.linalg.norm((ctx - base).reshape(len(wanted), -1), axis=-1) / norm))
    return out


WORD_USE_TIMESTEPS = (500, 750, 999)  # mid to pure noise: where the prompt decides what the clip becomes


def word_use(loss, videos: np.ndarray, wanted: Sequence, batch_size: int = 8) -> dict:
    """How much the model's diffusion loss on real clips rises when one attribute's word is swapped.

    `loss(videos, prompts) -> (B,)` per-clip loss with noise and timesteps
    fixed, so only the prompt differs between calls (`model_loss`). Score per
    attribute: mean over clips of loss(swapped prompt) / loss(true prompt) - 1.
    Near 0: the model does not read that word. Unlike sampling probes, this
    needs no sampler and no analyser; it is how we found that F ignores the
    direction words (docs/demo.md). A video model conditioned on the first
    frame may rightly score near 0 on colour, shape and background, which the
    frame already shows; direction is the one word it must read.
    """
    wanted = list(wanted)
    if len(videos) != len(wanted) or not wanted:
        raise ValueError(
            f"word_use needs one attribute set per clip and at least one clip, got "
            f"{len(videos)} clips and {len(wanted)} attribute sets"
        )
    sums = dict.fromkeys(ATTRIBUTE_WORDS, 0.0)
    for i in range(0, len(wanted), batch_size):
        v, w = videos[i : i + batch_size], wanted[i : i + batch_size]
        base = np.asarray(loss(v, [shapes.caption(a) for a in w]), np.float64)
        for field in ATTRIBUTE_WORDS:
            swapped = np.asarray(loss(v, [shapes.caption(a) for a in swap_word(w, field)]), np.float64)
            sums[field] += float(np.sum(swapped / base - 1.0))
    return {field: total / len(wanted) for field, total in sums.items()}


def model_loss(loaded, timesteps: Sequence[int] = WORD_USE_TIMESTEPS, seed: int = 0):
    """`loss(videos, prompts) -> (B,)` for `word_use`: a t2v / t2i checkpoint's own training loss (its
    prediction, uniform weighting, no condition dropout), averaged over `timesteps` with noise fixed by
    `seed`; F is conditioned on each clip's first frame, a t2i model sees the first frame alone."""
    import jax
    import jax.numpy as jnp

    from emu_jax.diffusion import objectives

    if loaded.task not in ("t2v", "t2i"):
        raise ValueError(f"word use is measured for a t2v or t2i checkpoint, got task {loaded.task!r}")
    m, sched, image_mode = loaded.model, loaded.schedule, loaded.task == "t2i"
    bad = [t for t in timesteps if not 0 <= int(t) < sched.num_train_steps]
    if bad:
        raise ValueError(f"timesteps {bad} outside [0, {sched.num_train_steps})")
    key = jax.random.key(seed)

    @jax.jit
    def per_clip(params, video, tokens):
        lat = m.batch_latents(params, {"video": video[:, :1] if image_mode else video}, key)
        cond = None if image_mode else conditioning.image_condition(lat[:, 0], lat.shape[1])
        contexts, masks = m.batch_contexts(params, tokens)
        total = jnp.zeros(lat.shape[0])
        for i, step in enumerate(timesteps):
            noise = jax.random.normal(jax.random.fold_in(key, i), lat.shape, lat.dtype)
            t = jnp.full((lat.shape[0],), int(step))
            out = m.denoise(
                params,
                objectives.q_sample(sched, lat, t, noise),
                t,
                contexts,
                cond=cond,
                image_mode=image_mode,
                context_masks=masks,
            )
            total = total + objectives.diffusion_loss(sched, out, lat, noise, t, loaded.prediction, "uniform", 5.0)
        return total / len(timesteps)

    return lambda videos, prompts: per_clip(loaded.params, jnp.asarray(videos), m.tokenize_all(list(prompts)))


def model_contexts(loaded, prompts: Sequence[str]) -> np.ndarray:
    """Every text encoder's per-token contexts for `prompts`, flattened and joined -> (B, N)."""
    m, toks = loaded.model, loaded.model.tokenize_all(list(prompts))
    return np.concatenate(
        [
            np.asarray(m.encode_text(loaded.params, toks[f"text_ids_{i}"], toks[f"text_mask_{i}"], i)).reshape(
                len(prompts), -1
            )
            for i in range(len(m.config.text))
        ],
        axis=1,
    )
