"""Helpers for the JUICE tests: tiny H.264 sample folders laid out like the sampler's output,
and the hidden fields of the rating form."""

from __future__ import annotations

import json
import os
import re

import numpy as np

from emu_jax.data import video_io

PROMPTS = ["a red ball rolls left", "a cat <script>alert(1)</script> & dog", "waves at dusk", "a tiny robot dances"]


def frames(color: tuple[int, int, int], n: int = 4, size: int = 16) -> np.ndarray:
    """uint8 (T, H, W, 3) flat colour with a moving white line, so frames differ."""
    out = np.full((n, size, size, 3), color, np.uint8)
    for t in range(n):
        out[t, t % size] = 255
    return out


def write_mp4(path: str, color: tuple[int, int, int]) -> None:
    video_io.write_mp4(path, frames(color), fps=8)


def write_samples(folder, prompts, color, seeds=None, nested=False, gif=False) -> None:
    """`<stem>.json` + `<stem>.mp4` (+ `<stem>.gif`) per prompt, as the sampler writes them."""
    os.makedirs(folder, exist_ok=True)
    for i, prompt in enumerate(prompts):
        stem = f"sample_{i:03d}"
        d = os.path.join(folder, stem) if nested else folder
        os.makedirs(d, exist_ok=True)
        write_mp4(os.path.join(d, stem + ".mp4"), color)
        if gif:
            video_io.write_gif(os.path.join(d, stem + ".gif"), frames(color), fps=8)
        meta = {"prompt": prompt, "prompt_index": i, "seed": (seeds or [0] * len(prompts))[i], "video": stem + ".mp4"}
        with open(os.path.join(d, stem + ".json"), "w") as f:
            json.dump(meta, f)


def form_fields(html: str) -> dict:
    """Hidden inputs (token, pair_id, nonce) of the rating form in `html`."""
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))
