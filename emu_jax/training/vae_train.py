"""Autoencoder training on single frames, with the run machinery of the diffusion stages.

Loss: L1 + L2 pixel reconstruction of a posterior sample plus a small KL term
(`train.kl_weight`, mean over the batch of the summed KL). There is no
adversarial or perceptual (LPIPS) term: on flat-coloured synthetic clips the
pixel losses already give sharp edges, and no pretrained LPIPS network is
available offline. The run is a normal training workdir (`emu_jax.json` +
Orbax steps holding `trainable = {"vae": ...}`), so `train.init_from` of the
text-to-image stage loads the VAE from it and a restart resumes it.
After training, `latent_scale` measures the latents' std so the diffusion
stages can set `model.vae.scaling_factor = 1 / std` (SD's recipe).
"""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.core import meta

from emu_jax import model_folder, sharding
from emu_jax.models import autoencoder as vae_lib
from emu_jax.training import checkpoint as ckpt_lib
from emu_jax.training import metrics as metrics_lib
from emu_jax.training.optim import make_optimizer
from emu_jax.training.state import abstract_state, create_state

log = logging.getLogger(__name__)
LOSSES = ("l1", "l2", "l1+l2")
SCALE_FILE = "latent_scale.json"


def _all(path: tuple[str, ...]) -> bool:
    del path
    return True


def vae_config(cfg: ml_collections.ConfigDict) -> vae_lib.VAEConfig:
    return vae_lib.VAEConfig.from_dict(cfg.model.vae.to_dict())


def validate(cfg: ml_collections.ConfigDict, mesh) -> vae_lib.VAEConfig:
    """Config errors named before compiling."""
    vcfg = vae_config(cfg)
    t = cfg.train
    if t.get("loss", "l1+l2") not in LOSSES:
        raise ValueError(f"train.loss={t.loss!r} is not one of {LOSSES}")
    if t.get("kl_weight", 1e-6) < 0:
        raise ValueError(f"train.kl_weight must be >= 0, got {t.kl_weight}")
    for name in ("steps", "save_every", "log_every", "batch_size"):
        if t[name] < 1:
            raise ValueError(f"train.{name} must be >= 1, got {t[name]}")
    frames = t.batch_size * int(cfg.data.num_frames)
    dp = sharding.data_parallel_size(mesh)
    if t.batch_size % dp:
        raise ValueError(f"train.batch_size={t.batch_size} is not divisible by the data-parallel size {dp}")
    vae_lib.check_pixels(vcfg, (frames, cfg.data.resolution, cfg.data.resolution, 3))
    return vcfg


def vae_loss(
    vcfg: vae_lib.VAEConfig, params: dict, x_BHWC: jax.Array, rng: jax.Array, *, kl_weight: float, kind: str = "l1+l2"
) -> tuple[jax.Array, dict]:
    """Reconstruction (L1 / L2 / both, pixels in [-1, 1]) of a posterior sample + kl_weight * KL."""
    module = vae_lib.AutoencoderKL(vcfg)
    post = module.apply({"params": params["vae"]}, x_BHWC, method=module.encode)
    rec = module.apply({"params": params["vae"]}, post.sample(rng), method=module.decode)
    err = rec - x_BHWC
    l1, l2 = jnp.abs(err).mean(), jnp.square(err).mean()
    rec_loss = {"l1": l1, "l2": l2, "l1+l2": l1 + l2}[kind]
    kl = post.kl().mean()
    return rec_loss + kl_weight * kl, {"l1": l1, "l2": l2, "kl": kl}


def make_step(vcfg, tx, lr_fn, seed: int, kl_weight: float, kind: str) -> Callable:
    base = jax.random.key(seed)

    def step(state, batch):
        video = batch["video"]
        x = video.reshape((-1,) + video.shape[2:])  # (B*T, H, W, 3): frames are independent examples
        rng = jax.random.fold_in(base, state.step)
        (loss, aux), grads = jax.value_and_grad(
            lambda p: vae_loss(vcfg, p, x, rng, kl_weight=kl_weight, kind=kind), has_aux=True
        )(state.trainable)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = tx.update(grads, state.opt_state, state.trainable)
        new = state.replace(
            step=state.step + 1, trainable=optax.apply_updates(state.trainable, updates), opt_state=opt_state
        )
        new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)  # a bad update is discarded
        return new, {
            "loss": loss,
            "grad_norm": grad_norm,
            "lr": lr_fn(state.step),
            "finite": finite,
            "step": state.step,
            **aux,
        }

    return step


def _boxed_params(vcfg: vae_lib.VAEConfig) -> dict:
    s = 2 * vcfg.downsample_factor
    tree = jax.eval_shape(
        lambda k: vae_lib.AutoencoderKL(vcfg).init(k, jnp.zeros((1, s, s, vcfg.in_channels))), jax.random.key(0)
    )
    return {"vae": tree["params"]}


def write_meta(workdir: pathlib.Path, cfg: ml_collections.ConfigDict) -> None:
    """`emu_jax.json` (task 'vae'): makes the workdir loadable by `model_folder` / `train.init_from`."""
    if jax.process_index() == 0:
        meta_ = {
            "format": model_folder.FORMAT,
            "version": model_folder.VERSION,
            "kind": "training_run",
            "task": "vae",
            "model": cfg.model.to_dict(),
        }
        (workdir / model_folder.META_FILE).write_text(json.dumps(meta_, indent=2))


def train_vae(
    cfg: ml_collections.ConfigDict,
    workdir: str | pathlib.Path,
    *,
    make_loader: Callable[..., Any] | None = None,
    stop_after: int | None = None,
) -> dict:
    """Train (or resume) the autoencoder run in `workdir`; returns the last logged metrics."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mesh = sharding.make_mesh(dict(cfg.mesh.shape))
    rules = sharding.normalize_rules(cfg.mesh.logical_axis_rules or None)
    vcfg = validate(cfg, mesh)
    tx, lr_fn = make_optimizer(cfg.train.optimizer, cfg.train.steps)
    boxed = abstract_state(_boxed_params(vcfg), _all, tx, use_ema=False)
    state_sh = sharding.params_shardings(boxed, mesh, rules)
    step_fn = jax.jit(
        make_step(vcfg, tx, lr_fn, cfg.seed, float(cfg.train.get("kl_weight", 1e-6)), cfg.train.get("loss", "l1+l2")),
        in_shardings=(state_sh, None),
        out_shardings=(state_sh, None),
        donate_argnums=0,
    )

    if make_loader is None:
        from emu_jax.data.pipeline import make_loader
    loader = make_loader(
        cfg.data,
        split=cfg.data.split,
        seed=cfg.seed,
        text=False,
        batch_size=cfg.train.batch_size // jax.process_count(),
    )
    ckpt = ckpt_lib.RunCheckpointer(workdir, keep=cfg.train.keep, async_save=cfg.train.async_save)
    write_meta(workdir, cfg)
    latest = ckpt.latest_step()
    if latest is not None:
        target = ckpt_lib.abstract_like(jax.eval_shape(lambda: meta.unbox(boxed)), state_sh)
        state = ckpt.restore(latest, target, data_iterator=loader)
        log.info("vae: resumed from step %d", latest)
    else:
        params = {"vae": vae_lib.init_params(vcfg, jax.random.key(cfg.seed))["params"]}
        state = jax.jit(lambda p: create_state(p, _all, tx, False), out_shardings=state_sh)(params)

    total, step = cfg.train.steps, int(jax.device_get(state.step))
    start, last_row, window = step, {}, []
    writer = metrics_lib.MetricsWriter(workdir, total, cfg.train.batch_size, start_step=step)
    try:
        with sharding.use_mesh(mesh, rules):
            it = iter(loader)
            while step < total:
                batch = sharding.shard_batch({"video": next(it)["video"]}, mesh)
                state, m = step_fn(state, batch)
                step += 1
                window.append(m)
                stopping = stop_after is not None and step - start >= stop_after
                saving = step % cfg.train.save_every == 0 or step == total or stopping
                if saving or step % cfg.train.log_every == 0:
                    fetched = metrics_lib.fetch(window)
                    metrics_lib.check_finite(fetched)
                    last_row, window = writer.write(fetched), []
                if saving:
                    ckpt.save(step, state, data_iterator=loader, config=cfg.to_dict(), force=True)
                if stopping:
                    break
    finally:
        ckpt.wait()
        writer.close()
    return {"step": step, **last_row}


def is_finished(cfg: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> bool:
    """True when the run in `workdir` has saved its last step."""
    d = pathlib.Path(workdir) / "checkpoints"
    steps = [int(p.name) for p in d.iterdir() if p.name.isdigit()] if d.is_dir() else []
    return bool(steps) and max(steps) >= cfg.train.steps


def latent_scale(
    cfg: ml_collections.ConfigDict,
    workdir: str | pathlib.Path,
    *,
    num_batches: int = 4,
    make_loader: Callable[..., Any] | None = None,
) -> dict:
    """Mean / std of posterior-sample latents and reconstruction PSNR on the test split, written to
    `workdir/latent_scale.json`; `shift_factor = mean` and `scaling_factor = 1 / std` then give
    zero-mean, unit-variance diffusion latents."""
    workdir = pathlib.Path(workdir)
    path = workdir / SCALE_FILE
    if path.is_file():
        return json.loads(path.read_text())
    vcfg = vae_config(cfg)
    _, params = model_folder.load_checkpoint(str(workdir))
    if make_loader is None:
        from emu_jax.data.pipeline import make_loader
    split = "test" if cfg.get("dataset", {}).get("num_test", 0) else cfg.data.split
    loader = make_loader(
        cfg.data,
        split=split,
        seed=0,
        batch_size=cfg.train.batch_size,
        shuffle=False,
        num_epochs=None,
        shard_index=0,
        shard_count=1,
        text=False,
    )
    module = vae_lib.AutoencoderKL(vcfg)
    # Posterior samples, as the diffusion stages draw them (`EmuModel.batch_latents`).
    enc = jax.jit(lambda x, k: module.apply({"params": params["vae"]}, x, method=module.encode).sample(k))
    dec = jax.jit(lambda z: module.apply({"params": params["vae"]}, z, method=module.decode))
    zs, mses = [], []
    it = iter(loader)
    for i in range(num_batches):
        v = next(it)["video"]
        x = jnp.asarray(v.reshape((-1,) + v.shape[2:]))
        z = enc(x, jax.random.key(i))
        zs.append(np.asarray(z))
        mses.append(float(jnp.mean(jnp.square((jnp.clip(dec(z), -1, 1) - x) / 2.0))))  # on [0, 1] pixels
    z = np.concatenate(zs)
    out = {
        "latent_std": float(z.std()),
        "latent_mean": float(z.mean()),
        "scaling_factor": float(1.0 / max(z.std(), 1e-6)),
        "shift_factor": float(z.mean()),
        "test_psnr_db": float(10 * np.log10(1.0 / max(np.mean(mses), 1e-12))),
    }
    if jax.process_index() == 0:
        path.write_text(json.dumps(out, indent=2))
    return out
