"""The output folder of `emu-video sample`: atomic item files, a manifest, resume and refusal.

Each item's files are written under a temporary name and renamed into place;
its JSON record (`<stem>.json`) is renamed last, so a record means "complete".
`manifest.json` names the run (checkpoint fingerprints, settings, seed,
prompts, ...) by a `run_id`; a rerun of the same command skips completed
items, and a different command into a folder holding another run's items
is refused unless `--overwrite`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Iterable, Mapping, Sequence

from emu_jax.errors import UserError

MANIFEST = "manifest.json"
FORMAT = "emu_jax.samples"
_TMP = ".tmp-"


def slug(text: str, max_len: int = 40) -> str:
    """Lowercase ASCII words joined by '-' (at most max_len chars): the file-name part of a prompt."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_len].rstrip("-")
    return s or "prompt"


def stem(index: int, prompt: str) -> str:
    return f"{index:04d}_{slug(prompt)}"


def run_id(identity: Mapping[str, Any]) -> str:
    """A short hash of what fixes every output (not batch size, device or process count)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def prompts_digest(prompts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:16]


def atomic_path(path: str) -> str:
    """Where to write `path` first; `commit(tmp, path)` renames it into place."""
    d, name = os.path.split(path)
    return os.path.join(d, f"{_TMP}{os.getpid()}-{name}")


def commit(tmp: str, path: str) -> None:
    os.replace(tmp, path)


def write_json(path: str, obj: Any) -> None:
    tmp = atomic_path(path)
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
    commit(tmp, path)


def read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def item_done(out: str, item_stem: str, rid: str) -> bool:
    """True when the item's record exists, belongs to run `rid` and names files that all exist."""
    rec = read_json(os.path.join(out, item_stem + ".json"))
    if not rec or rec.get("run_id") != rid:
        return False
    return all(os.path.isfile(os.path.join(out, f)) for f in rec.get("files", {}).values())


def check_folder(out: str, identity: Mapping[str, Any], stems: Sequence[str], overwrite: bool) -> list[str]:
    """Refuse (UserError) a folder holding another run's outputs unless `overwrite`; read-only.

    Returns the files `prepare_folder` will remove (another run's items, with --overwrite)."""
    rid = run_id(identity)
    old = read_json(os.path.join(out, MANIFEST))
    if old is not None and old.get("run_id") == rid and not overwrite:
        return []  # the same command again: resume
    if old is not None:
        what = ", ".join(_differences(old.get("run", {}), identity)) or "the run"
        if not overwrite:
            raise UserError(
                f"--out {out} holds samples of another command (different {what}); pass --overwrite "
                "to replace them, or choose another --out"
            )
        return _files_of(out, [i.get("stem", "") for i in old.get("items", [])]) + [os.path.join(out, MANIFEST)]
    clash = [
        s
        for s in stems
        if any(os.path.exists(os.path.join(out, s + ext)) for ext in (".json", "_keyframe.png"))
        and (overwrite or not _ours(out, s, rid))
    ]
    if clash and not overwrite:
        raise UserError(
            f"--out {out} already has outputs ({clash[0]}.json ...) from a run without a manifest; "
            "pass --overwrite to replace them, or choose another --out"
        )
    return _files_of(out, clash)


def _ours(out: str, item_stem: str, rid: str) -> bool:
    """A record of this very run (written before its manifest was: a run killed early)."""
    return (read_json(os.path.join(out, item_stem + ".json")) or {}).get("run_id") == rid


def _files_of(out: str, stems: Iterable[str]) -> list[str]:
    found = []
    for s in stems:
        rec = read_json(os.path.join(out, s + ".json")) or {}
        found += [os.path.join(out, f) for f in rec.get("files", {}).values()]
        found.append(os.path.join(out, s + ".json"))
    return [f for f in found if os.path.isfile(f)]


def prepare_folder(out: str, remove: Sequence[str]) -> None:
    """Create `out`, remove another run's files (allowed by `check_folder`) and dead temporaries.

    The manifest comes with the first finished item, so a run that fails before any leaves nothing."""
    os.makedirs(out, exist_ok=True)
    for f in remove:
        os.remove(f)
    for name in os.listdir(out):  # temporaries of a killed run: never a finished file
        if name.startswith(_TMP):
            os.remove(os.path.join(out, name))


def write_manifest(out: str, identity: Mapping[str, Any], items: Sequence[dict], done: Iterable[int]) -> None:
    done = set(done)
    write_json(
        os.path.join(out, MANIFEST),
        {
            "format": FORMAT,
            "version": 1,
            "run_id": run_id(identity),
            "run": dict(identity),
            "num_items": len(items),
            "num_done": len(done),
            "items": [{**it, "status": "done" if it["index"] in done else "pending"} for it in items],
        },
    )


def write_sample(out: str, s: Any, common: Mapping[str, Any], save_frames: bool = False) -> dict:
    """Write one Sample's files (each atomically, the JSON record last); returns its record."""
    from PIL import Image

    from emu_jax.data import video_io

    st = stem(s.index, s.prompt)
    files = {"keyframe": f"{st}_keyframe.png"}
    renames = []

    def target(name: str) -> str:
        tmp = atomic_path(os.path.join(out, name))
        renames.append((tmp, os.path.join(out, name)))
        return tmp

    Image.fromarray(s.keyframe).save(target(files["keyframe"]), format="PNG")
    record = {
        "prompt": s.prompt,
        "prompt_index": s.index,
        **common,
        "stages": s.stages,
        "timings_s": {k: round(v, 3) for k, v in s.timings.items()},
        "notes": s.notes,
        "noise_sha256": s.noise_sha256,
    }
    if s.video is not None:
        files["video_base"], files["gif_base"] = f"{st}.mp4", f"{st}.gif"
        video_io.write_mp4(target(files["video_base"]), s.video, s.fps)
        video_io.write_gif(target(files["gif_base"]), s.video, s.fps)
        record.update(video=files["video_base"], gif=files["gif_base"], fps=s.fps, num_frames=len(s.video))
    if s.interpolated is not None:
        name = f"{st}_{s.interp_fps}fps"
        files["video_interp"], files["gif_interp"] = name + ".mp4", name + ".gif"
        video_io.write_mp4(target(files["video_interp"]), s.interpolated, s.interp_fps)
        video_io.write_gif(target(files["gif_interp"]), s.interpolated, s.interp_fps)
        record.update(
            video=files["video_interp"],
            gif=files["gif_interp"],
            fps=s.interp_fps,
            num_frames=len(s.interpolated),
            base_fps=s.fps,
            base_num_frames=len(s.video),
        )
    if save_frames:  # exact uint8 pixels, for comparisons the lossy mp4 / GIF cannot support
        import numpy as np

        files["frames"] = f"{st}_frames.npz"
        arrays = {
            k: v
            for k, v in (("keyframe", s.keyframe), ("video", s.video), ("interpolated", s.interpolated))
            if v is not None
        }
        with open(target(files["frames"]), "wb") as f:
            np.savez(f, **arrays)
    record["files"] = files
    for tmp, path in renames:
        commit(tmp, path)
    write_json(os.path.join(out, f"{st}.json"), record)
    return record
