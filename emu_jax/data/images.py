"""Still images as model inputs: load, resize the short side, centre-crop (image-to-video's first frame)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from emu_jax.data import clips


def prepare_image(path_or_array: Any, resolution: int) -> tuple[np.ndarray, str]:
    """Load (PIL) / take an image, resize the short side and centre-crop to `resolution`; returns
    (uint8 (R, R, 3), a sentence saying what was done). Unreadable files raise ValueError naming the path."""
    if isinstance(path_or_array, np.ndarray):
        arr, name = path_or_array, "the image"
    else:
        from PIL import Image, UnidentifiedImageError

        name = str(path_or_array)
        if not os.path.isfile(name):
            raise FileNotFoundError(f"image {name!r} does not exist")
        try:
            with Image.open(name) as img:
                arr = np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"cannot read image {name!r}: {e}") from None
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {arr.dtype} {arr.shape}")
    h, w = arr.shape[:2]
    out = clips.resize_center_crop(arr[None], resolution)[0]
    if (h, w) == (resolution, resolution):
        return out, f"{name} is {w}x{h}: used as is"
    return out, (
        f"{name} is {w}x{h}: resized (short side to {resolution}, bicubic) and centre-cropped to "
        f"{resolution}x{resolution}"
    )
