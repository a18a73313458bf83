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
T, S = 8, 16
DIRS = [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, -1), (-1, 1), (1, 1)]

looks = np.random.default_rng(1).normal(size=(num_looks, 4)).astype(np.float32) * 1.5
looks[:4] = 1.5 * np.eye(4)[:min(num_looks, 4)]  # the first four: one channel each
clips, tokens = [], []
for d, (dx, dy) in enumerate(DIRS):
    for look in range(num_looks):
        v = np.full((T, S, S, 4), -0.5, np.float32)
        for k in range(T):
            x0, y0 = 6 + dx * k, 6 + dy * k
            v[k, max(y0, 0):y0 + 4, max(x0, 0):x0 + 4] = looks[look]
        clips.append(v)
        tokens.append((d, len(DIRS) + look))
lat, tokens = jnp.asarray(np.stack(clips)), np.asarray(tokens)
table = jnp.asarray(np.random.default_rng(0).normal(size=(len(DIRS) + num_looks, 32)).astype(np.float32))
cfg = UNetConfig(in_channels=4, cond_channels=5, out_channels=4, model_channels=32, channel_mult=(1, 2),
                 num_res_blocks=1, attention_resolutions=(1, 2), num_heads=None, head_dim=8, context_dims=(32,),
                 norm_groups=8, temporal=True, **{k: ast.literal_eval(v) for k, v in extra.items()})
unet = UNet(cfg)
sched = schedules.make_schedule("scaled_linear", zero_terminal_snr=True)
cond = conditioning.image_condition(lat[:, 0], T)
train, frozen = split_params(init_params(cfg, jax.random.key(0)), mode)
tx = optax.adam(1e-3)
opt = tx.init(train)


def loss_fn(params, t, noise, toks, idx=None):
    x0, c = (lat, cond) if idx is None else (lat[idx], cond[idx])
    x_t = objectives.q_sample(sched, x0, t, noise)
    out = unet.apply({"params": params}, x_t, t, (table[jnp.asarray(toks)],), cond=c)
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
        lambda tr: loss_fn(merge_params(tr, frozen), t, noise, jnp.asarray(tokens)[idx], idx).mean())(train)
    updates, opt = tx.update(grads, opt, train)
    return optax.apply_updates(train, updates), opt, loss


wrong = tokens.copy()
wrong[:, 0] = (tokens[:, 0] + 1) % len(DIRS)


@jax.jit
def word_gap(train):
    params, out = merge_params(train, frozen), {}
    for tt in (999, 750, 500):
        t, noise = jnp.full((lat.shape[0],), tt), jax.random.normal(jax.random.key(tt), lat.shape)
        base, bad = loss_fn(params, t, noise, tokens), loss_fn(params, t, noise, wrong)
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
