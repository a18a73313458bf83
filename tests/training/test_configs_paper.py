"""configs/emu_video.py: every stage of the paper's recipe builds and validates on 8 devices.

Only abstract shapes are built (`loop.build` + `loop.validate`, and `make_run`'s
eval_shape for stage 2): the 4.3B parameters are never allocated.
"""

import jax
import numpy as np
import pytest

from emu_jax import sharding
from emu_jax.config import load_config
from emu_jax.training import loop

STAGES = ("stage1", "stage2", "hq", "interp")


@pytest.fixture(scope="module")
def mesh():
    return sharding.make_mesh({"data": 1, "fsdp": -1, "tensor": 1})


@pytest.mark.parametrize("stage", STAGES)
def test_stage_builds_and_validates(stage, mesh):
    cfg = load_config(f"configs/emu_video.py:{stage}")
    emu_cfg, schedule, spec = loop.build(cfg)
    loop.validate(cfg, emu_cfg, spec, mesh)
    # SPEC: 256 px eps-pred on the standard schedule, then 512 px v-pred with zero terminal SNR.
    if stage == "stage1":
        assert (emu_cfg.resolution, cfg.data.fps, spec.prediction) == (256, 8.0, "eps")
        assert float(schedule.alphas_cumprod[-1]) > 0
    else:
        assert (emu_cfg.resolution, spec.prediction) == (512, "v")
        assert float(schedule.alphas_cumprod[-1]) == 0.0
    assert emu_cfg.latent_size == emu_cfg.resolution // 8
    assert tuple(t.config.width for t in emu_cfg.text) == (768, 2048)
    want = {"stage1": (512, 1e-4, 8), "stage2": (512, 1e-4, 8), "hq": (64, 2.5e-5, 8), "interp": (384, 1.5e-4, 37)}
    assert (cfg.train.batch_size, cfg.train.optimizer.lr, loop.expected_frames(emu_cfg, spec)) == want[stage]
    assert emu_cfg.unet.cond_level_embed == (stage == "interp")


@pytest.mark.slow
def test_stage2_make_run_is_abstract_and_sharded(mesh):
    cfg = load_config("configs/emu_video.py:stage2")
    run = loop.make_run(cfg, mesh)
    state = run.abstract_state()
    count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))  # noqa: E731
    assert 1.2e9 < count(state.trainable) < 1.8e9  # temporal layers (paper: 1.7B)
    assert 3.5e9 < count(state.frozen) < 5e9  # spatial U-Net + VAE + CLIP-L + T5-XL
    assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(state))
    # FSDP: the largest U-Net kernels are split over all 8 devices.
    big = max(jax.tree.leaves(state.frozen["unet"]), key=lambda x: int(np.prod(x.shape)))
    assert big.sharding.shard_shape(big.shape) != big.shape


def test_unknown_stage_is_named():
    with pytest.raises(ValueError, match="stage3"):
        load_config("configs/emu_video.py:stage3")
