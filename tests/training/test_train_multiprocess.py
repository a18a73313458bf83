"""Two processes on localhost (jax.distributed, gloo CPU collectives) train, save and resume."""

import json
import os
import socket
import subprocess
import sys

import pytest

from emu_test_utils import REPO, xla_flags

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]  # two processes train, save and resume (~95 s)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(workdir, data_dir, steps):
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(2))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emu_jax.train",
                "--config",
                str(REPO / "configs" / "tiny.py") + ":t2v",
                "--workdir",
                str(workdir),
                f"--config.data.data_dir={data_dir}",
                f"--config.train.steps={steps}",
                "--config.train.save_every=2",
                "--config.train.log_every=1",
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return outs


def test_two_processes_train_save_and_resume(tiny_shapes_dir, tmp_path):
    _launch(tmp_path, tiny_shapes_dir, steps=2)
    assert (tmp_path / "checkpoints" / "2").is_dir()
    _, err = _launch(tmp_path, tiny_shapes_dir, steps=4)[0]
    assert "resumed from step 2" in err
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # process 0 logs once per step, resumed at 3
    assert (tmp_path / "checkpoints" / "4").is_dir()
