"""Inference sweeps: one checkpoint sampled over a grid of sampler settings, no training.

Each grid point (method, num_steps, spacing, guidance scales, guidance_rescale) is an "arm" evaluated on the
same prompts with the same per-item noise, so points compare pairwise. The default metric needs no weights:
`ref_pixel_error`, each item's mean absolute pixel difference (in [0, 1]) from the same item sampled at
the grid's most expensive point (the reference: what cheaper settings converge to). The report adds each
point's network evaluations: NFE = steps x guidance branches (keyframe: 2, text CFG; video: 3,
two-condition CFG), plotted against quality.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import pathlib

import numpy as np

from emu_jax.ablate import metrics, report
from emu_jax.ablate.runner import arm_dir, write_atomic
from emu_jax.errors import UserError

log = logging.getLogger("emu_jax.ablate")
AXES = ("method", "num_steps", "spacing", "guidance_keyframe", "guidance_image", "guidance_text", "guidance_rescale")
BRANCHES = {"t2v": 2 + 3, "t2i": 2}  # model evaluations per step, keyframe + video stage


def grid(axes: dict[str, list]) -> list[dict]:
    """Every combination of the given axes (unknown axes rejected); axes left out keep the checkpoint's."""
    bad = sorted(set(axes) - set(AXES))
    if bad:
        raise UserError(f"unknown sweep axes {bad}; allowed: {list(AXES)}")
    keys = [k for k in AXES if axes.get(k)]
    return [dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys))]


def point_name(point: dict) -> str:
    short = {"num_steps": "s", "guidance_keyframe": "gk", "guidance_image": "gi", "guidance_text": "gt"}
    short |= {"guidance_rescale": "r", "spacing": "", "method": ""}
    return "-".join(f"{short[k]}{v}" for k, v in point.items()) or "default"


def _check(checkpoint: str, points: list[dict]):
    """Every point validated against the checkpoint's schedule before anything samples."""
    from emu_jax.sampling.loading import load_model
    from emu_jax.sampling.settings import Settings

    try:
        loaded = load_model(checkpoint)
    except (OSError, ValueError) as e:
        raise UserError(f"--checkpoint {checkpoint}: {e}") from None
    for p in points:
        try:
            Settings.from_dict(loaded.meta.get("sampling"), **p).validate(loaded.schedule, loaded.prediction)
        except (ValueError, TypeError) as e:
            raise UserError(f"sweep point {point_name(p)}: {e}") from None
    return loaded


def run(checkpoint: str, axes: dict[str, list], out: pathlib.Path, settings: dict) -> dict:
    """Sample and score every grid point (finished points are skipped), then write the report."""
    out = pathlib.Path(out)
    points = grid(axes)
    if not points:
        raise UserError("the sweep grid is empty: give at least one axis (--methods, --steps, ...)")
    loaded = _check(checkpoint, points)
    base = {k: v for k, v in (loaded.meta.get("sampling") or {}).items() if k in AXES}
    full = [{**base, **p} for p in points]
    nfe = [int(f.get("num_steps", 250)) * BRANCHES.get(loaded.task, 5) for f in full]
    ref = int(np.argmax(nfe))  # the first most expensive point: the reference cheaper points are scored against
    names = [point_name(p) for p in points]
    if "denoise_loss" in settings["metrics"]:
        raise UserError("denoise_loss does not depend on sampler settings; a sweep takes ref_pixel_error, ...")
    fns = {m: metrics.resolve(m) for m in settings["metrics"] if m != "ref_pixel_error"}
    ref_file = out / "reference_videos.npy"  # kept so a resumed sweep need not resample the reference
    reference_videos = None
    records = {}
    for i in sorted(range(len(points)), key=lambda j: j != ref):  # the reference first: others need its videos
        blob = json.dumps([str(pathlib.Path(checkpoint).absolute()), full[i], settings], sort_keys=True, default=str)
        fingerprint = hashlib.sha256(blob.encode()).hexdigest()[:16]
        path = arm_dir(out, names[i]) / "eval.json"
        if path.is_file() and json.loads(path.read_text()).get("fingerprint") == fingerprint:
            log.info("point %s: done (eval.json present), skipped", names[i])
            records[names[i]] = json.loads(path.read_text())
            continue
        ctx = metrics.EvalContext(None, checkpoint, {**settings, "sampling": points[i]})
        values = {m: np.asarray(fn(ctx), np.float64).reshape(-1).tolist() for m, fn in fns.items()}
        if "ref_pixel_error" in settings["metrics"]:
            videos = ctx.sample().astype(np.float32) / 255.0
            if i == ref:
                tmp = ref_file.with_name(".reference_videos.tmp.npy")
                ref_file.parent.mkdir(parents=True, exist_ok=True)
                np.save(tmp, ctx.sample())
                tmp.replace(ref_file)
            if reference_videos is None:
                reference_videos = np.load(ref_file).astype(np.float32) / 255.0
            values["ref_pixel_error"] = np.abs(videos - reference_videos).mean(axis=(1, 2, 3, 4)).tolist()
        better = {m: getattr(fns.get(m), "better", "lower") for m in settings["metrics"]}
        records[names[i]] = {
            "arm": names[i],
            "overrides": {k: str(v) for k, v in points[i].items()},
            "settings": full[i],
            "nfe": nfe[i],
            "fingerprint": fingerprint,
            "better": better,
            "values": values,
        }
        write_atomic(path, json.dumps(records[names[i]], indent=1))
        log.info("point %s (NFE %d): evaluated", names[i], nfe[i])
    records = {n: records[n] for n in names}
    summary = report.write(records, names[ref], out, settings["resamples"], settings["seed"])
    summary["nfe"] = {n: records[n]["nfe"] for n in names}
    summary["reference"] = names[ref]
    note = nfe_chart(summary, out / "quality_vs_nfe.png")
    if note:
        summary["nfe_chart"] = note
    write_atomic(out / "ablate.json", json.dumps(summary, indent=1))
    return summary


def nfe_chart(summary: dict, path: pathlib.Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "quality-vs-NFE chart skipped: matplotlib is not installed (pip install 'emu_jax[plots]')"
    names = list(summary["metrics"])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, m in zip(axes[0], names):
        for arm, row in summary["metrics"][m]["arms"].items():
            ci, x = row["ci"], summary["nfe"][arm]
            ax.errorbar([x], [ci["mean"]], yerr=[[ci["mean"] - ci["lo"]], [ci["hi"] - ci["mean"]]], fmt="o", capsize=3)
            ax.annotate(arm, (x, ci["mean"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations per item (NFE)")
        ax.set_title(f"{m} ({summary['metrics'][m]['better']} is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None
