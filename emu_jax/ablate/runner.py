"""One arm: train (resuming its workdir) then evaluate; the finished eval is one atomically written file.

Layout under the study's --out DIR:
  arms/NAME/run/        the arm's training workdir (`emu-video train` layout; a killed arm resumes here)
  arms/NAME/eval.json   per-item metric values + the arm's fingerprint; present = the arm is done
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
    values = {}
    for m in study.eval["metrics"]:
        v = np.asarray(metrics.resolve(m)(ctx), np.float64).reshape(-1)
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
        "eval_s": round(time.time() - t0, 2),
    }
    write_atomic(arm_dir(out, name) / "eval.json", json.dumps(record, indent=1))
    log.info("arm %s: evaluated in %.1f s", name, record["eval_s"])
    return record
