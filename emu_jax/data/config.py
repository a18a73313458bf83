"""The `cfg.data` layout read by `pipeline.make_loader`, with documented defaults.

Config files under configs/data/ start from `data_config(...)` so every
dataset config has the same fields (and `--config.data.x=...` overrides
work for all of them).
"""

from __future__ import annotations

import ml_collections


def data_config(**overrides) -> ml_collections.ConfigDict:
    """Default data fields, updated with `overrides` (unknown names are a KeyError)."""
    cfg = ml_collections.ConfigDict(
        {
            "name": "video_text_folder",  # a prepared TFDS dataset: 'video_text_folder', 'latents', ...
            "data_dir": "workdir/data",  # TFDS data_dir holding <name>/<version>/
            "split": "train",
            "resolution": 256,  # output frames are resolution x resolution (resize + centre crop)
            "num_frames": 8,  # frames per clip
            "fps": 8.0,  # clip frame rate; 0 / None keeps the source rate
            "clip_seconds": ml_collections.config_dict.placeholder(float),  # or fps = num_frames / clip_seconds
            "keep_frames": 0,  # > 0: keep only the first K frames of each sampled clip (0 = all)
            "resize_method": "bicubic",  # 'bicubic' | 'box' | 'bilinear' | 'lanczos' (PIL)
            "shuffle_seed": 0,
            "worker_count": 0,  # grain worker processes; 0 = decode in the training process
            "read_threads": 2,  # threads per process reading + decoding
            "prefetch_batches": 4,
            "max_skip_fraction": 0.1,  # video_text_folder build: fail if more videos are unusable
            "min_clip_seconds": 1.0,  # video_text_folder build: skip shorter videos
            "text_max_length": 64,  # token ids padded / truncated to this length
            "subset_file": "",  # optional `emu-video data select-hq` output to train on
        }
    )
    for key, value in overrides.items():
        if key not in cfg:
            raise KeyError(f"unknown data config field {key!r}; fields: {sorted(cfg)}")
        cfg[key] = value
    return cfg
