"""Data config for your own videos (`emu-video data build video_text_folder ...`) at a paper stage.

`get_config("256")`: stage 1, 256 px, 8 frames at 8 fps (1 s clips).
`get_config("512")`: stage 2 / HQ, 512 px, 8 frames at 4 fps (2 s clips).
Returns only the `cfg.data` sub-dict; fields: see emu_jax/data/config.py.
"""

from emu_jax.data.config import data_config

STAGES = {"256": dict(resolution=256, num_frames=8, fps=8.0), "512": dict(resolution=512, num_frames=8, fps=4.0)}


def get_config(arg=None):
    stage = arg or "256"
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r} is not one of {sorted(STAGES)}")
    return data_config(name="video_text_folder", min_clip_seconds=2.0, **STAGES[stage])
