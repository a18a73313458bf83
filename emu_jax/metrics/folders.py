"""Read a folder of videos (mp4 / gif / webm / mov / mkv, via PyAV) or images (png / jpg) as uint8 (N, T, H, W, 3).

All files of a folder must share a frame size; videos are cut to the
shortest one's length so they stack (images are T = 1). Prompt files for
CLIP score: .txt (one prompt per line, in the sorted order of the files) or
.json ({file name: prompt}).
"""

from __future__ import annotations

import json
import os

import numpy as np

VIDEO_EXTS = (".mp4", ".gif", ".webm", ".mov", ".mkv", ".avi")
IMAGE_EXTS = (".png", ".jpg", ".jpeg")


def media_files(folder: str) -> list[str]:
    """Sorted media file names in `folder`; ValueError naming the folder when it is missing or holds none."""
    if not os.path.isdir(folder):
        raise ValueError(f"folder {folder!r} does not exist")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(VIDEO_EXTS + IMAGE_EXTS))
    if not names:
        raise ValueError(
            f"folder {folder!r} holds no videos ({', '.join(VIDEO_EXTS)}) or images ({', '.join(IMAGE_EXTS)})"
        )
    kinds = {n.lower().endswith(VIDEO_EXTS) for n in names}
    if len(kinds) > 1:
        raise ValueError(f"folder {folder!r} mixes videos and images; use one kind per folder")
    return names


def _read(path: str) -> np.ndarray:
    if path.lower().endswith(IMAGE_EXTS):
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))[None]
    from emu_jax.data.video_io import decode_all

    return decode_all(path)


def read_folder(folder: str) -> tuple[list[str], np.ndarray]:
    """(file names, uint8 (N, T, H, W, 3)); ValueError on unreadable files or mixed frame sizes."""
    names = media_files(folder)
    clips = []
    for name in names:
        try:
            clips.append(_read(os.path.join(folder, name)))
        except Exception as e:  # PyAV / PIL raise many types; name the file instead
            raise ValueError(f"cannot read {os.path.join(folder, name)!r}: {e}") from e
    sizes = sorted({c.shape[1:3] for c in clips})
    if len(sizes) > 1:
        raise ValueError(f"files in {folder!r} have different frame sizes {sizes}; resize them to one size")
    length = min(len(c) for c in clips)
    return names, np.stack([c[:length] for c in clips])


def read_prompts(path: str, names: list[str]) -> list[str]:
    """One prompt per fake file, from a .txt (line order = sorted file order) or .json {file name: prompt}."""
    if not os.path.isfile(path):
        raise ValueError(f"prompts file {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        if path.endswith(".json"):
            table = json.load(f)
            missing = [n for n in names if n not in table] if isinstance(table, dict) else names
            if missing:
                raise ValueError(
                    f"prompts json {path!r} must map every fake file name to a prompt; missing {missing[:3]}"
                )
            return [str(table[n]) for n in names]
        prompts = [line.strip() for line in f if line.strip()]
    if len(prompts) != len(names):
        raise ValueError(f"{path!r} has {len(prompts)} prompts for {len(names)} fake files; give one per line")
    return prompts
