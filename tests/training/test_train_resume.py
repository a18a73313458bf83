"""Exact resume: straight run == run killed with SIGKILL and restarted (params and per-step losses).

Runs `python -m emu_jax.train` in subprocesses on 2 simulated devices. Also:
restoring weights only (fresh optimiser and data position) must differ, and
a step directory left half-written by a kill during an async save is ignored.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from emu_test_utils import REPO, xla_flags
from emu_jax import checkpoint_io

pytestmark = pytest.mark.slow  # subprocess training runs: straight, SIGKILLed and resumed (~70-95 s)

STEPS, EVERY = 6, 2


def _cmd(workdir, data_dir, *extra):
    return [sys.executable, "-m", "emu_jax.train", "--config", str(REPO / "configs" / "tiny.py") + ":t2v",
            "--workdir", str(workdir), f"--config.data.data_dir={data_dir}", f"--config.train.steps={STEPS}",
            f"--config.train.save_every={EVERY}", "--config.train.log_every=1", "--config.train.keep=10",
            *extra]


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(2))
    return env


def _run(workdir, data_dir, *extra):
    out = subprocess.run(_cmd(workdir, data_dir, *extra), env=_env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]


def _losses(workdir):
    """Per-step loss; a step logged twice (before a kill and after resuming) keeps its last value."""
    rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def _params(workdir):
    return checkpoint_io.load_checkpoint(str(workdir), prefer_ema=False)[1]


def _steps(workdir):
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


@pytest.fixture(scope="module")
def straight(tiny_shapes_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    _run(workdir, tiny_shapes_dir)
    return workdir


@pytest.fixture(scope="module")
def killed_and_resumed(tiny_shapes_dir, tmp_path_factory):
    """Start, SIGKILL as soon as the first checkpoint is committed, keep a copy, restart."""
    workdir = tmp_path_factory.mktemp("killed")
    proc = subprocess.Popen(_cmd(workdir, tiny_shapes_dir), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    first = workdir / "checkpoints" / str(EVERY)
    deadline = time.time() + 600
    while not first.is_dir() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.is_dir(), "the run never committed its first checkpoint"
    killed_at = max(_steps(workdir))
    assert killed_at < STEPS, "the run finished before it was killed: the test proved nothing"
    snapshot = tmp_path_factory.mktemp("snapshot")
    shutil.copytree(workdir, snapshot, dirs_exist_ok=True)
    _run(workdir, tiny_shapes_dir)
    return workdir, snapshot, killed_at


def test_kill9_resume_is_bit_identical(straight, killed_and_resumed):
    workdir, _, killed_at = killed_and_resumed
    a, b = _losses(straight), _losses(workdir)
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    assert a == b, {s: (a[s], b[s]) for s in a if a[s] != b[s]}
    pa, pb = _params(straight), _params(workdir)
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
        np.testing.assert_array_equal(x, y)
    print(f"killed after checkpoint {killed_at}; resumed to {STEPS}; {len(jax.tree.leaves(pa))} arrays equal")


def test_weights_only_restore_differs(straight, killed_and_resumed, tiny_shapes_dir, tmp_path):
    """Same weights at the snapshot step but a fresh optimiser, RNG step and data position."""
    _, snapshot, killed_at = killed_and_resumed
    weights_only = tmp_path / "weights_only"
    _run(weights_only, tiny_shapes_dir, f"--config.train.init_from={snapshot}",
         f"--config.train.steps={STEPS - killed_at}")
    pa, pc = _params(straight), _params(weights_only)
    diffs = [float(np.abs(x - y).max()) for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pc))]
    assert max(diffs) > 0, "weights-only restore reproduced the straight run: exact resume is untested"


def test_partial_async_save_is_ignored(straight, killed_and_resumed, tiny_shapes_dir):
    """A kill during an async save leaves an uncommitted tmp step; restart resumes before it."""
    _, snapshot, killed_at = killed_and_resumed
    ckpts = snapshot / "checkpoints"
    for p in ckpts.iterdir():  # keep only the oldest committed step
        if p.name.isdigit() and int(p.name) > EVERY:
            shutil.rmtree(p)
    partial = ckpts / f"{2 * EVERY}.orbax-checkpoint-tmp-1764100000000000"
    shutil.copytree(ckpts / str(EVERY), partial)
    for marker in ("commit_success.txt", "_CHECKPOINT_METADATA"):
        (partial / marker).unlink(missing_ok=True)
    assert checkpoint_io._latest_step(str(snapshot)) == EVERY
    _run(snapshot, tiny_shapes_dir)
    assert not partial.exists()  # cleaned up on restart
    assert _losses(snapshot)[STEPS] == _losses(straight)[STEPS]
    for x, y in zip(jax.tree.leaves(_params(straight)), jax.tree.leaves(_params(snapshot))):
        np.testing.assert_array_equal(x, y)
