"""Exact resume: straight run == run killed with SIGKILL and restarted (params and per-step metrics).

Runs `python -m emu_jax.train` in subprocesses on 2 simulated devices. Also:
restoring weights only (fresh optimiser and data position) must differ, and
a step directory left half-written by a kill during an async save is ignored;
metrics.jsonl and TensorBoard hold each step once after the resume; resuming
with another model is refused and leaves the run folder byte-identical.
"""

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from emu_jax import model_folder
from emu_test_utils import REPO, xla_flags

pytestmark = pytest.mark.slow  # subprocess training runs: straight, SIGKILLed and resumed (~70-95 s)

STEPS, EVERY = 6, 2


def _cmd(workdir, data_dir, *extra):
    return [
        sys.executable,
        "-m",
        "emu_jax.train",
        "--config",
        str(REPO / "configs" / "tiny.py") + ":t2v",
        "--workdir",
        str(workdir),
        f"--config.data.data_dir={data_dir}",
        f"--config.train.steps={STEPS}",
        f"--config.train.save_every={EVERY}",
        "--config.train.log_every=1",
        "--config.train.keep=10",
        *extra,
    ]


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(2))
    return env


def _run(workdir, data_dir, *extra):
    out = subprocess.run(_cmd(workdir, data_dir, *extra), env=_env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]


def _rows(workdir):
    return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


def _losses(workdir):
    """Per-step loss; a step logged twice (before a kill and after resuming) keeps its last value."""
    return {r["step"]: r["loss"] for r in _rows(workdir)}


def _tensorboard_steps(workdir, tag="train/loss"):
    """[(step, value)] of `tag` as TensorBoard shows it: a SessionLog START at step S (purge_step)
    hides the earlier files' events at steps >= S."""
    from tensorboardX.proto.event_pb2 import Event, SessionLog

    shown = []
    for path in sorted((workdir / "tensorboard").iterdir(), key=lambda p: int(p.name.split(".")[3])):
        data, pos = path.read_bytes(), 0
        while pos < len(data):  # TFRecord: u64 length, u32 crc, payload, u32 crc
            (n,) = struct.unpack("<Q", data[pos : pos + 8])
            event = Event.FromString(data[pos + 12 : pos + 12 + n])
            pos += 16 + n
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                shown = [(s, v) for s, v in shown if s < event.step]
            for value in event.summary.value:
                if value.tag == tag:
                    shown.append((event.step, value.simple_value))
    return shown


def _tree_hashes(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _params(workdir):
    return model_folder.load_checkpoint(str(workdir), prefer_ema=False)[1]


def _steps(workdir):
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


@pytest.fixture(scope="module")
def straight(tiny_shapes_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    _run(workdir, tiny_shapes_dir)
    return workdir


@pytest.fixture(scope="module")
def killed_and_resumed(tiny_shapes_dir, tmp_path_factory):
    """Start, SIGKILL once the first checkpoint is committed and a later step is logged, keep a copy, restart."""
    workdir = tmp_path_factory.mktemp("killed")
    proc = subprocess.Popen(
        _cmd(workdir, tiny_shapes_dir), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    first, metrics = workdir / "checkpoints" / str(EVERY), workdir / "metrics.jsonl"

    def logged_past_checkpoint():
        return first.is_dir() and metrics.exists() and f'"step": {EVERY + 1},' in metrics.read_text()

    deadline = time.time() + 600
    while not logged_past_checkpoint() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.is_dir(), "the run never committed its first checkpoint"
    killed_at = max(_steps(workdir))
    assert killed_at < STEPS, "the run finished before it was killed: the test proved nothing"
    assert max(r["step"] for r in _rows(workdir)) > killed_at, (
        "no step was logged after the last checkpoint: duplicated metrics are untested"
    )
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


def test_kill9_resume_logs_each_step_once(straight, killed_and_resumed):
    """metrics.jsonl and TensorBoard: steps 1..STEPS once each, values equal to the uninterrupted run's."""
    workdir, _, _ = killed_and_resumed
    rows, ref = _rows(workdir), _rows(straight)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for r, q in zip(rows, ref):
        assert {k: r[k] for k in ("loss", "grad_norm", "lr")} == {k: q[k] for k in ("loss", "grad_norm", "lr")}, r
    shown = _tensorboard_steps(workdir)
    assert [s for s, _ in shown] == list(range(1, STEPS + 1)), shown
    np.testing.assert_allclose([v for _, v in shown], [q["loss"] for q in ref], rtol=1e-6)


def test_other_model_resume_is_refused_and_writes_nothing(killed_and_resumed, tiny_shapes_dir, tmp_path):
    """A different model on an existing run: exit 2, one line naming the field, every file unchanged."""
    _, snapshot, _ = killed_and_resumed
    run = tmp_path / "run"
    shutil.copytree(snapshot, run)
    before = _tree_hashes(run)
    out = subprocess.run(
        _cmd(run, tiny_shapes_dir, "--config.model.unet.model_channels=64", "--config.train.optimizer.lr=0.5"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1].startswith("emu-video train: error: --workdir")
    assert "model.unet.model_channels: 32 -> 64" in out.stderr and "Traceback" not in out.stderr
    assert _tree_hashes(run) == before


def test_weights_only_restore_differs(straight, killed_and_resumed, tiny_shapes_dir, tmp_path):
    """Same weights at the snapshot step but a fresh optimiser, RNG step and data position."""
    _, snapshot, killed_at = killed_and_resumed
    weights_only = tmp_path / "weights_only"
    _run(
        weights_only,
        tiny_shapes_dir,
        f"--config.train.init_from={snapshot}",
        f"--config.train.steps={STEPS - killed_at}",
    )
    pa, pc = _params(straight), _params(weights_only)
    diffs = [float(np.abs(x - y).max()) for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pc))]
    assert max(diffs) > 0, "weights-only restore reproduced the straight run: exact resume is untested"


def test_partial_async_save_is_ignored(straight, killed_and_resumed, tiny_shapes_dir, tmp_path):
    """A kill during an async save leaves an uncommitted tmp step; restart resumes before it."""
    _, shared_snapshot, _ = killed_and_resumed
    snapshot = tmp_path / "run"  # a copy: the module's snapshot must stay at the kill for the other tests
    shutil.copytree(shared_snapshot, snapshot)
    ckpts = snapshot / "checkpoints"
    for p in ckpts.iterdir():  # keep only the oldest committed step
        if p.name.isdigit() and int(p.name) > EVERY:
            shutil.rmtree(p)
    partial = ckpts / f"{2 * EVERY}.orbax-checkpoint-tmp-1764100000000000"
    shutil.copytree(ckpts / str(EVERY), partial)
    for marker in ("commit_success.txt", "_CHECKPOINT_METADATA"):
        (partial / marker).unlink(missing_ok=True)
    assert model_folder._latest_step(str(snapshot)) == EVERY
    _run(snapshot, tiny_shapes_dir)
    assert not partial.exists()  # cleaned up on restart
    assert _losses(snapshot)[STEPS] == _losses(straight)[STEPS]
    for x, y in zip(jax.tree.leaves(_params(straight)), jax.tree.leaves(_params(snapshot))):
        np.testing.assert_array_equal(x, y)


def test_truncated_checkpoint_names_its_step(killed_and_resumed, tiny_shapes_dir, tmp_path):
    """A cut-short array file in the newest step: exit 2, one line naming that step and the way out;
    the folder is left as it was (a killed save's partial step included)."""
    _, snapshot, killed_at = killed_and_resumed
    run = tmp_path / "run"
    shutil.copytree(snapshot, run)
    assert model_folder._latest_step(str(run)) == killed_at, "the snapshot no longer ends at the kill"
    for p in (run / "checkpoints" / str(killed_at) / "state").rglob("*"):
        if p.is_file() and p.parent.name == "d":  # OCDBT data files hold the arrays
            with open(p, "r+b") as f:
                f.truncate(min(100, p.stat().st_size))
    partial = run / "checkpoints" / f"{killed_at + EVERY}.orbax-checkpoint-tmp"  # a save the kill cut short
    if not partial.exists():
        shutil.copytree(run / "checkpoints" / str(killed_at), partial)
        (partial / "_CHECKPOINT_METADATA").unlink(missing_ok=True)
    before = _tree_hashes(run)
    out = subprocess.run(_cmd(run, tiny_shapes_dir), env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith(f"emu-video train: error: checkpoint step {killed_at} (") and "cannot be restored" in line
    assert (
        f"delete that folder to resume from step {killed_at - EVERY}"
        if killed_at > EVERY
        else "delete that folder to start from step 0"
    ) in line, line
    assert _tree_hashes(run) == before
