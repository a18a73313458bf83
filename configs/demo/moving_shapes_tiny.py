"""Data config: moving shapes at 32x32, 8 frames at 8 fps (the end-to-end demo's input).

`get_config()` returns only the `cfg.data` sub-dict; experiment configs put it
under `cfg.data`. Fields: see emu_jax/data/config.py.
"""

from emu_jax.data.config import data_config


def get_config(arg=None):
    del arg
    return data_config(name="moving_shapes", resolution=32, num_frames=8, fps=8.0, text_max_length=64)
