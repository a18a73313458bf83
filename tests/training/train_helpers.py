"""Shared by the training tests: train a tiny run on one fixed batch and measure its loss."""

import jax

from emu_jax import sharding
from emu_jax.data.pipeline import make_loader
from emu_jax.training import loop
from emu_jax.training.step import loss_fn


def fixed_batch_loss_before_after(cfg, steps: int, draws: int = 4):
    """Loss at fixed (t, noise) draws before and after `steps` updates on one batch, on 1 device.

    Fixed draws make the comparison free of sampling noise, so a modest drop is real.
    Returns (before, after, the batch, the run, params before, params after).
    """
    run = loop.make_run(cfg, sharding.make_mesh({"data": 1}, jax.devices()[:1]))
    _, schedule, spec = loop.build(cfg)
    state = run.init_state()
    with sharding.use_mesh(run.mesh, run.rules):
        loader = make_loader(
            cfg.data, split="train", seed=0, batch_size=cfg.train.batch_size, tokenizer=run.model.tokenizers[0]
        )
        batch = next(loop._batches(loader, run.model, run.mesh))
        eval_loss = jax.jit(
            lambda p: (
                sum(loss_fn(run.model, schedule, spec, p, batch, jax.random.key(i))[0] for i in range(draws)) / draws
            )
        )
        before, params0 = float(eval_loss(state.params)), jax.device_get(state.params)
        for _ in range(steps):
            state, _ = run.step(state, batch)
        after = float(eval_loss(state.params))
    return before, after, batch, run, params0, jax.device_get(state.params)
