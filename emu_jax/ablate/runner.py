"""One arm: train (resuming its workdir) then evaluate; the finished eval is one atomically written file.

Layout under the study's --out DIR:
  arms/NAME/run/        the arm's training workdir (`emu-video train` layout; a killed arm resumes here)
  arms/NAME/eval.json   per-item metric values + the arm's fingerprint; present = the arm is done
  arms/NAME/features.npz  set-level metrics' features (FID / FVD-like), when the study has any
A rerun skips an arm whose eval.json matches its fingerprint, so a killed study continues where it
stopped and arms can run one per process (`--arm NAME`) with a final `--report`.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import time

import numpy as np

from emu_jax.ablate import metrics
from emu_jax.ablate.study import Arm, Study
from emu_jax.errors import UserError

log = logging.getLogger("emu_jax.ablate")
FEATURES = "features.npz"  # set-level metrics' features (fake and reference) of the arm


def arm_dir(out: pathlib.Path, name: str) -> pathlib.Path:
    return pathlib.Path(out) / "arms" / name


def write_atomic(path: pathlib.Path, text: str) -> None:
    """Write then rename: a kill leaves either the old file or the new one, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def finished(study: Study, out: pathlib.Path, name: str) -> dict | None:
    """The arm's eval record if it finished under this study's setup, else None."""
    path = arm_dir(out, name) / "eval.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("fingerprint") != study.arms[name].fingerprint(study.eval):
        raise UserError(
            f"{path} was written by a different setup of arm {name!r} (config or eval settings changed); "
            "use a new --out or delete that arm's folder"
        )
    if record.get("set_metrics"):
        with np.load(path.parent / FEATURES) as f:
            record["features"] = {k: f[k] for k in f.files}
    return record


def train_arm(arm: Arm, out: pathlib.Path) -> str:
    """Train (or resume) the arm; returns the checkpoint to evaluate."""
    if arm.checkpoint:
        return arm.checkpoint
    from emu_jax.training.loop import train

    workdir = arm_dir(out, arm.name) / "run"
    t0 = time.time()
    summary = train(arm.cfg, workdir)
    log.info("arm %s: trained to step %s in %.1f s", arm.name, summary.get("step"), time.time() - t0)
    return str(workdir)


def run_arm(study: Study, out: pathlib.Path, name: str) -> dict:
    """Train and evaluate one arm unless its eval is already done; returns its eval record."""
    out = pathlib.Path(out)
    done = finished(study, out, name)
    if done is not None:
        log.info("arm %s: done (eval.json present), skipped", name)
        return done
    arm = study.arms[name]
    checkpoint = train_arm(arm, out)
    t0 = time.time()
    ctx = metrics.EvalContext(arm.cfg, checkpoint, study.eval)
    values, features = {}, {}
    for m in study.eval["metrics"]:
        fn = metrics.resolve(m)
        if metrics.is_set_level(fn):
            fake, real = (np.asarray(a, np.float32) for a in fn(ctx))
            if fake.ndim != 3 or real.ndim != 3 or fake.shape[0] != int(study.eval["num_items"]):
                raise UserError(f"set-level metric {m!r} must give (num_items, K, D) and (M, K, D) features")
            features[f"{m}:fake"], features[f"{m}:real"] = fake, real
            continue
        v = np.asarray(fn(ctx), np.float64).reshape(-1)
        if v.size != int(study.eval["num_items"]):
            raise UserError(f"metric {m!r} gave {v.size} values for {study.eval['num_items']} items")
        if not np.all(np.isfinite(v)):
            log.warning("arm %s: metric %s has non-finite values", name, m)
        values[m] = v.tolist()
    record = {
        "arm": name,
        "overrides": {k: str(v) for k, v in arm.overrides.items()},
        "checkpoint": checkpoint,
        "fingerprint": arm.fingerprint(study.eval),
        "better": {m: getattr(metrics.resolve(m), "better", "lower") for m in study.eval["metrics"]},
        "values": values,
        "set_metrics": sorted({k.rsplit(":", 1)[0] for k in features}),
        "eval_s": round(time.time() - t0, 2),
    }
    if features:  # written before eval.json: eval.json present means the arm is whole
        tmp = arm_dir(out, name) / f".{FEATURES}.{os.getpid()}.npz"
        np.savez(tmp, **features)
        os.replace(tmp, arm_dir(out, name) / FEATURES)
    write_atomic(arm_dir(out, name) / "eval.json", json.dumps(record, indent=1))
    log.info("arm %s: evaluated in %.1f s", name, record["eval_s"])
    return {**record, "features": features}
