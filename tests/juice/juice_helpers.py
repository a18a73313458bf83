"""Helpers for the JUICE tests: tiny H.264 sample folders laid out like the sampler's output,
and the hidden fields of the rating form."""

from __future__ import annotations

import json
import os
import re

import av
import numpy as np

PROMPTS = ["a red ball rolls left", "a cat <script>alert(1)</script> & dog", "waves at dusk", "a tiny robot dances"]


def write_mp4(path: str, color: tuple[int, int, int], frames: int = 4, size: int = 16) -> None:
    """A few frames of flat colour, libx264 yuv420p (even sizes, as H.264 needs)."""
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for t in range(frames):
            img = np.full((size, size, 3), color, np.uint8)
            img[t % size, :, :] = 255  # a moving line, so frames differ
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_samples(folder, prompts, color, seeds=None, nested=False) -> None:
    """`<stem>.json` + `<stem>.mp4` per prompt, as the sampler writes them."""
    os.makedirs(folder, exist_ok=True)
    for i, prompt in enumerate(prompts):
        stem = f"sample_{i:03d}"
        d = os.path.join(folder, stem) if nested else folder
        os.makedirs(d, exist_ok=True)
        write_mp4(os.path.join(d, stem + ".mp4"), color)
        meta = {"prompt": prompt, "prompt_index": i, "seed": (seeds or [0] * len(prompts))[i], "video": stem + ".mp4"}
        with open(os.path.join(d, stem + ".json"), "w") as f:
            json.dump(meta, f)


def form_fields(html: str) -> dict:
    """Hidden inputs (token, pair_id, nonce) of the rating form in `html`."""
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))
