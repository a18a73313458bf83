"""Gradient accumulation: train.microbatches=4 gives the update (and loss) of the whole batch at once,
on 8 simulated devices; a batch that does not split per data shard is refused before compiling."""

import jax
import numpy as np
import pytest

from emu_jax import sharding
from emu_jax.data.pipeline import make_loader
from emu_jax.training import loop
from emu_test_utils import tiny_config


def _one_step(cfg, mesh):
    """Metrics and the change of the trainable params after one step."""
    run = loop.make_run(cfg, mesh)
    state = run.init_state()
    before = jax.device_get(state.trainable)  # the step donates the state
    with sharding.use_mesh(run.mesh, run.rules):
        it = make_loader(cfg.data, split="train", seed=0, batch_size=cfg.train.batch_size)
        batch = next(loop._batches(it, run.model, run.mesh))
        state, m = run.step(state, batch)
    return jax.device_get(m), jax.tree.map(lambda a, b: a - b, jax.device_get(state.trainable), before)


@pytest.mark.slow  # two compiles of the tiny train step on 8 devices: ~1-4 min on 2 shared cores
def test_microbatches_equal_whole_batch(tiny_shapes_dir):
    # 16 clips over 4 data shards (data=2 x fsdp=2; tensor=2): 4 per shard, one per microbatch.
    mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    results = {}
    for n in (1, 4):
        cfg = tiny_config(
            tiny_shapes_dir,
            "t2v",
            train__batch_size=16,
            train__microbatches=n,
            train__optimizer__warmup_steps=0,
            train__optimizer__eps=1.0,
        )
        results[n] = _one_step(cfg, mesh)
    (m1, d1), (m4, d4) = results[1], results[4]
    np.testing.assert_allclose(m4["loss"], m1["loss"], rtol=1e-5)
    np.testing.assert_allclose(m4["t_mean"], m1["t_mean"], rtol=1e-6)
    np.testing.assert_allclose(m4["grad_norm"], m1["grad_norm"], rtol=1e-4)
    # Adam's first step is lr * g / (|g| + eps); eps = 1 makes it ~ lr * g, so comparing the param
    # changes compares the accumulated gradient with the whole-batch one.
    for a, b in zip(jax.tree.leaves(d4), jax.tree.leaves(d1)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    # The comparison means something only if the step moved the params.
    assert bool(m1["finite"]) and max(float(np.abs(b).max()) for b in jax.tree.leaves(d1)) > 0


def test_indivisible_microbatches_fail_before_compiling(tiny_shapes_dir):
    # batch 8 over 8 data shards = 1 clip per shard: it cannot be split in 2.
    cfg = tiny_config(tiny_shapes_dir, "t2v", train__batch_size=8, train__microbatches=2)
    with pytest.raises(ValueError, match=r"train.microbatches=2 does not divide the per-data-shard batch 8/8"):
        loop.make_run(cfg, sharding.make_mesh({"data": 8}))
    cfg = tiny_config(tiny_shapes_dir, "t2v", train__microbatches=0)
    with pytest.raises(ValueError, match="train.microbatches must be >= 1"):
        loop.make_run(cfg, sharding.make_mesh({"data": 1}, jax.devices()[:1]))


def test_train_cli_exits_2_on_indivisible_microbatches(tmp_path, capsys):
    from emu_jax.cli import main

    # 8 clips on 8 devices (mesh data=-1): 1 per shard, not divisible by 3.
    code = main(
        [
            "train",
            "--config",
            "configs/tiny.py:t2v",
            "--workdir",
            str(tmp_path / "run"),
            "--config.train.batch_size=8",
            "--config.train.microbatches=3",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "train.microbatches=3 does not divide the per-data-shard batch 8/8" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
