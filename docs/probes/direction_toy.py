"""Can emu_jax's video U-Net learn a motion direction from text at all? (docs/demo.md, "Direction" item 12)

A toy without VAE or text encoder: latent clips (8 frames of 16x16x4) of a 4x4 blob that starts at the centre
and moves 1 latent pixel per frame in one of 8 directions, NC looks (which latent channel the blob is in). The
"text" is two tokens, direction and look, from a fixed random table (a frozen text encoder). The first frame
conditions every clip (F's layout), so only the direction token tells where the blob goes.
Every EVERY steps it prints, at t = 999 / 750 / 500, (loss with the true prompt, loss with the next direction
word / loss with the true prompt - 1): near 0 means the model does not read the direction word.

    JAX_PLATFORMS=cpu python docs/probes/direction_toy.py MODE STEPS [NC=1] [UNetConfig field=value ...]

MODE: the trainable rule (all | spatial | temporal), from a random init. NC > 4 looks are random latent
colours; BATCH=B trains on B random clips per step (default: all); PAIRED=1 trains each step on one random
look in all 8 directions; CURRICULUM=S trains the first S steps on look 0 alone in all 8 directions (the
word on one look first), then as above. With NC > 1 each line also gives the t = 999 / 750 / 500 rise on look 0's
clips alone. About 2 s per step of 8 clips on 2 CPU cores.
Walking the toy towards F (item 17): TEXT=CKPT uses a checkpoint's frozen text encoder on the real captions
(TEXT=layers:N a fresh random one with N layers); POOL=eos | content keeps only the caption's last token or its
four attribute words; FILLER=N adds N constant tokens to the two; SPATIAL_TEXT=0 zeroes the frozen spatial
cross-attention's output, so only the temporal layers can read the text (as in F); MOVE=F latent pixels per frame.
"""
import ast
import functools
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from emu_jax import conditioning
from emu_jax.diffusion import objectives, schedules
from emu_jax.models.trainable import merge_params, split_params
from emu_jax.models.unet import UNet, init_params
from emu_jax.models.unet_config import UNetConfig

mode = sys.argv[1] if len(sys.argv) > 1 else "all"
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 300
extra = dict(a.split("=", 1) for a in sys.argv[3:])
num_looks = int(extra.pop("NC", "1"))
batch = int(extra.pop("BATCH", "0"))  # clips per step, drawn at random; 0: every clip every step
paired = extra.pop("PAIRED", "0") == "1"  # each step: one random look in all 8 directions (BATCH ignored)
curriculum = int(extra.pop("CURRICULUM", "0"))  # steps on look 0 alone before the rest
text = extra.pop("TEXT", "")  # a t2v/t2i checkpoint: its frozen encoder's contexts of real captions
move = float(extra.pop("MOVE", "1"))  # latent pixels per frame
spatial_text = extra.pop("SPATIAL_TEXT", "1") == "1"  # 0: the frozen random spatial layers read no text
pool = extra.pop("POOL", "")  # with TEXT: eos = the U-Net sees only the caption's last token
T, S = 8, 16
DIRS = [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, -1), (-1, 1), (1, 1)]

looks = np.random.default_rng(1).normal(size=(num_looks, 4)).astype(np.float32) * 1.5
looks[:4] = 1.5 * np.eye(4)[:min(num_looks, 4)]  # the first four: one channel each
clips, tokens = [], []
for d, (dx, dy) in enumerate(DIRS):
    for look in range(num_looks):
        v = np.full((T, S, S, 4), -0.5, np.float32)
        for k in range(T):
            x0, y0 = 6 + round(dx * k * move), 6 + round(dy * k * move)
            v[k, max(y0, 0):y0 + 4, max(x0, 0):x0 + 4] = looks[look]
        clips.append(v)
        tokens.append((d, len(DIRS) + look))
lat, tokens = jnp.asarray(np.stack(clips)), np.asarray(tokens)
table = jnp.asarray(np.random.default_rng(0).normal(size=(len(DIRS) + num_looks, 32)).astype(np.float32))
filler = int(extra.pop("FILLER", "0"))  # without TEXT: this many more constant tokens after the two
filler_table = jnp.asarray(np.random.default_rng(2).normal(size=(filler, 32)).astype(np.float32))
if text:  # contexts and masks per (direction, look) from the real text encoder, as F sees them
    from emu_jax.models.loading import load_model
    from emu_jax.data import shapes
    from emu_jax.models import text as text_lib
    from emu_jax.models.tokenizers import load_tokenizer
    words = [(c, s) for s in shapes.SHAPES for c in shapes.COLORS]
    captions = [f"a {words[lk][0]} {words[lk][1]} moving {d} on a black background"
                for d in shapes.DIRECTIONS for lk in range(num_looks)]
    if text.startswith("layers:"):  # a fresh random-init demo encoder with N layers (key 0)
        from emu_jax.config import load_config
        spec = dict(load_config("demo/shapes.py:t2v").model.text_encoders[0])
        spec["config"] = dict(spec["config"])
        spec["config"]["num_hidden_layers"] = int(text[7:])
        enc_cfg = text_lib.config_from_dict(spec["kind"], spec["config"])
        tb = load_tokenizer("moving_shapes")(captions, spec["max_length"])
        ids, text_mask = jnp.asarray(tb.ids), jnp.asarray(tb.mask)
        text_ctx = text_lib.encode_text(enc_cfg, text_lib.init_params(enc_cfg, jax.random.key(0)), ids, text_mask)
    else:
        loaded = load_model(text)
        toks = loaded.model.tokenize_all(captions)
        text_ctx = jnp.asarray(loaded.model.encode_text(loaded.params, toks["text_ids_0"], toks["text_mask_0"], 0))
        text_mask = jnp.asarray(toks["text_mask_0"])
    if pool == "eos":  # attend to the last real token only (CLIP's pooled position)
        last = jnp.sum(text_mask, axis=1) - 1
        text_mask = jnp.arange(text_mask.shape[1])[None] == last[:, None]
    elif pool == "content":  # only the colour, shape, direction and background words (positions 2, 3, 5, 8)
        text_mask = text_mask & jnp.isin(jnp.arange(text_mask.shape[1]), jnp.asarray([2, 3, 5, 8]))[None]
    diff = jnp.linalg.norm(text_ctx - text_ctx[(jnp.arange(len(captions)) + num_looks) % len(captions)], axis=-1)
    print("direction swap moves the contexts by", diff[0].round(2), "of norm",
          jnp.linalg.norm(text_ctx[0], axis=-1).round(2), flush=True)
    print("captions", captions[:2], "contexts", text_ctx.shape, flush=True)
cfg = UNetConfig(in_channels=4, cond_channels=5, out_channels=4, model_channels=32, channel_mult=(1, 2),
                 num_res_blocks=1, attention_resolutions=(1, 2), num_heads=None, head_dim=8,
                 context_dims=(text_ctx.shape[-1] if text else 32,),
                 norm_groups=8, temporal=True, **{k: ast.literal_eval(v) for k, v in extra.items()})
unet = UNet(cfg)
sched = schedules.make_schedule("scaled_linear", zero_terminal_snr=True)
cond = conditioning.image_condition(lat[:, 0], T)
params = init_params(cfg, jax.random.key(0))
if not spatial_text:  # as in F, whose T2I-trained spatial layers ignore the direction word: they read no text
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.zeros_like(x) if "['attn2']['to_out_0']['kernel']" in jax.tree_util.keystr(path)
        and "temporal" not in jax.tree_util.keystr(path) else x, params)
train, frozen = split_params(params, mode)
tx = optax.adam(1e-3)
opt = tx.init(train)


def loss_fn(params, t, noise, caps, idx=None):
    """caps: which clip's caption each example gets (clip index = direction * num_looks + look)."""
    x0, c = (lat, cond) if idx is None else (lat[idx], cond[idx])
    x_t = objectives.q_sample(sched, x0, t, noise)
    if text:
        out = unet.apply({"params": params}, x_t, t, (text_ctx[caps],), cond=c, context_masks=(text_mask[caps],))
    else:
        ctx = table[jnp.asarray(tokens)[caps]]
        if filler:  # the same caption-independent tokens in every prompt, as a caption's template words
            ctx = jnp.concatenate([ctx, jnp.broadcast_to(filler_table, (ctx.shape[0],) + filler_table.shape)], 1)
        out = unet.apply({"params": params}, x_t, t, (ctx,), cond=c)
    return objectives.diffusion_loss(sched, out, x0, noise, t, "v", "uniform", 5.0)


@functools.partial(jax.jit, static_argnames="first_look")
def step(train, opt, key, first_look=False):
    k_t, k_n, k_i = jax.random.split(key, 3)
    if first_look:  # clip index is direction * num_looks + look
        idx = num_looks * jnp.arange(len(DIRS))
    elif paired:
        idx = jax.random.randint(k_i, (), 0, num_looks) + num_looks * jnp.arange(len(DIRS))
    else:
        idx = jax.random.permutation(k_i, lat.shape[0])[:batch or lat.shape[0]]
    t = jax.random.randint(k_t, idx.shape, 0, sched.num_train_steps)
    noise = jax.random.normal(k_n, (idx.shape[0],) + lat.shape[1:])
    loss, grads = jax.value_and_grad(
        lambda tr: loss_fn(merge_params(tr, frozen), t, noise, idx, idx).mean())(train)
    updates, opt = tx.update(grads, opt, train)
    return optax.apply_updates(train, updates), opt, loss


own = jnp.arange(len(tokens))
wrong = (own + num_looks) % len(tokens)  # the next direction word, same look


@jax.jit
def word_gap(train):
    params, out = merge_params(train, frozen), {}
    for tt in (999, 750, 500):
        t, noise = jnp.full((lat.shape[0],), tt), jax.random.normal(jax.random.key(tt), lat.shape)
        base, bad = loss_fn(params, t, noise, own), loss_fn(params, t, noise, wrong)
        look0 = jnp.asarray(tokens[:, 1] == len(DIRS))
        out[tt] = (base.mean(), bad.mean() / base.mean() - 1,
                   jnp.sum(bad * look0) / jnp.sum(base * look0) - 1)
    return out


every, key, t0 = max(1, steps // 4), jax.random.key(1), time.time()
for i in range(steps + 1):
    if i % every == 0:
        gaps = {k: tuple(round(float(x), 4) for x in v[:3 if num_looks > 1 else 2])
                for k, v in word_gap(train).items()}
        print(i, f"{time.time() - t0:.0f}s", gaps, flush=True)
    if i < steps:
        train, opt, _ = step(train, opt, jax.random.fold_in(key, i), first_look=i < curriculum)
