"""Training runs: loss decreases, NaN aborts without saving, config errors come before compile."""

import json

import grain
import numpy as np
import pytest

from emu_jax import sharding
from emu_jax.data.pipeline import make_loader
from emu_jax.training import loop
from emu_jax.training.metrics import NonFiniteError
from emu_test_utils import tiny_config
from train_helpers import fixed_batch_loss_before_after


@pytest.mark.slow  # trains the tiny model end to end (~40 s on busy cores)
def test_loss_goes_down_on_tiny_moving_shapes(tiny_shapes_dir):
    """Text-to-image stage on a fixed batch: the loss at fixed (t, noise) draws drops."""
    cfg = tiny_config(
        tiny_shapes_dir,
        "t2i",
        train__batch_size=8,
        train__optimizer__lr=3e-3,
        train__optimizer__warmup_steps=0,
        train__drop_text=0.0,
        train__drop_image=0.0,
        train__drop_both=0.0,
    )
    before, after, *_ = fixed_batch_loss_before_after(cfg, steps=25)
    print(f"fixed-draw loss before {before:.4f} after 25 steps {after:.4f}")
    assert after < 0.95 * before


class _NaNAt(grain.DatasetIterator):
    """A loader that turns batch `k` into NaNs; checkpointable like the real one."""

    def __init__(self, inner, k):
        super().__init__(inner)
        self.k, self.n = k, 0

    def __next__(self):
        batch = dict(next(self._parent))
        if self.n == self.k:
            batch["video"] = np.full_like(batch["video"], np.nan)
        self.n += 1
        return batch

    def get_state(self):
        return self._parent.get_state()

    def set_state(self, state):
        self._parent.set_state(state)


@pytest.mark.slow
def test_injected_nan_aborts_naming_the_step_and_saves_nothing_bad(tiny_shapes_dir, tmp_path):
    cfg = tiny_config(
        tiny_shapes_dir,
        "t2v",
        train__steps=6,
        train__save_every=1,
        train__log_every=1,
        train__async_save=False,
        mesh__shape__tensor=2,
    )  # data 4 x tensor 2 on 8 devices
    with pytest.raises(NonFiniteError, match="at step 3"):
        loop.train(cfg, tmp_path, make_loader=lambda *a, **k: _NaNAt(make_loader(*a, **k), 2))
    saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert saved == [1, 2]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]


def test_config_errors_before_compile(tiny_shapes_dir, monkeypatch):
    def no_compile(*a, **k):
        raise AssertionError("compiled before validating")

    monkeypatch.setattr(loop, "make_train_step", no_compile)
    mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    with pytest.raises(ValueError, match=r"batch_size=6 is not divisible by the data-parallel size 4"):
        loop.make_run(tiny_config(tiny_shapes_dir, "t2v", train__batch_size=6), mesh)
    with pytest.raises(ValueError, match=r"data.num_frames=4 does not match the model: task 't2v' needs 8"):
        loop.make_run(tiny_config(tiny_shapes_dir, "t2v", data__num_frames=4), mesh)
    with pytest.raises(ValueError, match=r"data.keep_frames=1 does not match the model: task 't2v' needs 8"):
        loop.make_run(tiny_config(tiny_shapes_dir, "t2v", data__keep_frames=1), mesh)
    with pytest.raises(ValueError, match=r"unknown config key 'train.stepz'"):
        tiny_config(tiny_shapes_dir, "t2v", train__stepz=3)
    with pytest.raises(ValueError, match="zero_terminal_snr with prediction 'eps'"):
        loop.make_run(tiny_config(tiny_shapes_dir, "t2v", diffusion__prediction="eps"), mesh)
    with pytest.raises(ValueError, match="unknown loss weighting 'snr'; allowed"):
        loop.make_run(tiny_config(tiny_shapes_dir, "t2v", train__loss_weighting="snr"), mesh)
    with pytest.raises(ValueError, match="unknown train task 'video'"):
        loop.make_run(tiny_config(tiny_shapes_dir, "t2v", train__task="video"), mesh)
    with pytest.raises(ValueError, match="trainable='temporal' would train nothing"):
        loop.make_run(tiny_config(tiny_shapes_dir, "t2i", train__trainable="temporal"), mesh)
