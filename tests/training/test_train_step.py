"""The train step: sharded == single device, frozen params untouched, loss decreases, NaN abort."""

import jax
import numpy as np
import pytest

from emu_jax import sharding
from emu_jax.data.pipeline import make_loader
from emu_jax.training import loop
from emu_test_utils import tiny_config


def _batch(cfg, run, n=None):
    it = make_loader(cfg.data, split="train", seed=0, batch_size=n or cfg.train.batch_size)
    return next(loop._batches(it, run.model, run.mesh))


def _run_steps(cfg, mesh, steps=2):
    run = loop.make_run(cfg, mesh)
    state = run.init_state()
    frozen0 = jax.device_get(state.frozen)
    with sharding.use_mesh(run.mesh, run.rules):
        batch = _batch(cfg, run)
        losses = []
        for _ in range(steps):
            state, m = run.step(state, batch)
            losses.append(float(m["loss"]))
    return losses, jax.device_get(state.trainable), frozen0, jax.device_get(state.frozen)


@pytest.fixture(scope="module")
def single_device(tiny_shapes_dir):
    cfg = tiny_config(tiny_shapes_dir, "t2v", train__batch_size=8)
    return cfg, _run_steps(cfg, sharding.make_mesh({"data": 1}, jax.devices()[:1]))


@pytest.mark.slow
@pytest.mark.parametrize("shape", [{"data": 2, "fsdp": 4}, {"data": 2, "fsdp": 2, "tensor": 2}])
def test_sharded_step_equals_single_device(single_device, shape):
    cfg, (losses1, trainable1, _, _) = single_device
    losses, trainable, frozen0, frozen = _run_steps(cfg, sharding.make_mesh(shape))
    np.testing.assert_allclose(losses, losses1, rtol=2e-5)
    # Adam divides each gradient by its own RMS, so where the two steps' gradients nearly cancel,
    # reduction-order rounding (which differs between CPU builds) moves an element by up to ~1e-6;
    # a sharding bug moves whole tensors by the step size (lr 2e-4 at step 2).
    for a, b in zip(jax.tree.leaves(trainable), jax.tree.leaves(trainable1)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=5e-6)


@pytest.mark.slow  # ~7 s: builds the state and compiles two train steps
def test_frozen_params_bit_identical_and_trainable_moves(single_device):
    _, (_, trainable, frozen0, frozen) = single_device
    for a, b in zip(jax.tree.leaves(frozen0), jax.tree.leaves(frozen)):
        np.testing.assert_array_equal(a, b)
    names = {"/".join(map(str, k)) for k, _ in jax.tree_util.tree_flatten_with_path(trainable)[0]}
    assert names and all(("temporal_" in n) or ("conv_in_cond" in n) for n in names), sorted(names)[:5]
    assert not any(n.startswith(("vae", "text")) for n in names)


def test_runs_differing_only_in_lr_schedule_ema_and_seed_lower_to_one_program(tiny_shapes_dir):
    """The schedule's numbers, the EMA decay and the seed are inputs of the step, not constants in it: a
    recipe's sub-stages or an ablation's LR arms compile once (the compilation cache serves the rest)."""
    from emu_jax.training.aot import abstract_batch

    mesh = sharding.make_mesh({"data": 1}, jax.devices()[:1])
    base = dict(train__batch_size=2, train__ema_decay=0.99)
    other = dict(
        train__optimizer__lr=3e-4,
        train__optimizer__warmup_steps=2,
        train__optimizer__decay="cosine",
        train__steps=9,
        train__ema_decay=0.998,
        seed=7,
    )
    texts, hps = [], []
    for overrides in (base, {**base, **other}):
        run = loop.make_run(tiny_config(tiny_shapes_dir, "t2v", **overrides), mesh)
        with sharding.use_mesh(run.mesh, run.rules):
            lowered = run.step_fn.lower(run.abstract_state(), abstract_batch(run, 2, "video"), run.abstract_hp())
        texts.append(lowered.as_text())
        hps.append(run.hp)
    assert texts[0] == texts[1]
    assert hps[1]["lr"] == np.float32(3e-4) and hps[1]["seed"] == 7 and hps[0]["ema_decay"] != hps[1]["ema_decay"]


@pytest.mark.slow  # ~60 s: compiles the step twice and initialises three states
def test_a_run_differing_only_in_hyperparams_reuses_the_step_and_reads_its_own(tiny_shapes_dir):
    """A later run whose program is the same (only `optim.hyperparams`, lengths and paths differ: a recipe's
    next sub-stage) gets the earlier run's jitted step, with no retrace or cache load, and that step
    computes the update the later run's own freshly built step does; any change to the program does not."""
    mesh = sharding.make_mesh({"data": 1}, jax.devices()[:1])
    config = lambda **o: tiny_config(tiny_shapes_dir, "t2v", train__batch_size=2, **o)  # noqa: E731
    loop._STEPS.clear()
    first = loop.make_run(config(), mesh)
    later_cfg = config(train__optimizer__lr=3e-3, train__optimizer__warmup_steps=0, train__steps=9, seed=7)
    later = loop.make_run(later_cfg, mesh)
    assert later.step_fn is first.step_fn
    for change in (
        dict(train__optimizer__b1=0.5),
        dict(train__ema_decay=0.99),
        dict(train__microbatches=2),
        dict(train__loss_weighting="min_snr"),
        dict(train__trainable="all"),
    ):
        assert loop.make_run(config(**change), mesh).step_fn is not first.step_fn, change

    loop._STEPS.clear()
    fresh = loop.make_run(later_cfg, mesh)
    assert fresh.step_fn is not first.step_fn
    with sharding.use_mesh(mesh, later.rules):
        batch = _batch(later_cfg, later)
        updated = [jax.device_get(run.step(run.init_state(), batch)[0].trainable) for run in (later, fresh)]
        moved_by_first = jax.device_get(first.step(first.init_state(), batch)[0].trainable)
    for a, b in zip(jax.tree.leaves(updated[0]), jax.tree.leaves(updated[1])):
        np.testing.assert_array_equal(a, b)
    assert any((a != b).any() for a, b in zip(jax.tree.leaves(updated[0]), jax.tree.leaves(moved_by_first)))
