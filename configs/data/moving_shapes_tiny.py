"""Data config: moving shapes at 32x32, 8 frames at 8 fps (the end-to-end demo's input).

`get_config()` returns only the `cfg.data` sub-dict; experiment configs put it
under `cfg.data`. Fields are read by `emu_jax.data.pipeline.make_loader`.
"""

import ml_collections


def get_config(arg=None):
    del arg
    return ml_collections.ConfigDict({
        "name": "moving_shapes",        # 'moving_shapes' | 'video_text_folder' | 'latents'
        "data_dir": "workdir/data",     # TFDS data_dir holding <name>/<version>/
        "split": "train",
        "resolution": 32,               # output frames are resolution x resolution (resize + centre crop)
        "num_frames": 8,                # frames per clip
        "fps": 8.0,                     # clip frame rate; None keeps the source rate
        "clip_seconds": ml_collections.config_dict.placeholder(float),          # alternative to fps: fps = num_frames / clip_seconds
        "resize_method": "bicubic",     # 'bicubic' | 'box' | 'bilinear' | 'lanczos'
        "shuffle_seed": 0,
        "worker_count": 0,              # grain worker processes; 0 = decode in the training process
        "read_threads": 2,              # threads per process reading + decoding
        "prefetch_batches": 4,
        "max_skip_fraction": 0.1,       # video_text_folder build: fail if more videos are unusable
        "min_clip_seconds": 1.0,        # video_text_folder build: skip shorter videos
        "text_max_length": 64,          # token ids padded / truncated to this length
        "subset_file": "",              # optional `emu-video data select-hq` output to train on
    })
