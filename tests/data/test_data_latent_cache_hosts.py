"""cache-latents in two jax.distributed processes (localhost, gloo) writes the one-process latents, and a run
killed after its first shard resumes without redoing it."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from emu_jax import cli as emu_cli
from emu_test_utils import REPO, xla_flags

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]  # each ~30 s on a loaded 2-core host
CONFIG = str(REPO / "configs" / "demo" / "moving_shapes_tiny.py")


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory):
    from emu_jax.data import builders
    from emu_jax.demo.dataset import MovingShapes

    d = str(tmp_path_factory.mktemp("pixels"))
    builders.prepare(MovingShapes(resolution=16, num_frames=6, fps=8, num_train=10, num_test=0, data_dir=d))
    return d


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    """A tiny random diffusers AutoencoderKL (2 levels, 8 latent channels), saved as a folder."""
    import diffusers
    import torch

    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=8,
        norm_num_groups=4,
        sample_size=16,
    ).eval()
    path = tmp_path_factory.mktemp("vae")
    vae.save_pretrained(str(path))
    return str(path)


def _args(source_dir, out_dir, encoder=("--encoder", "pool:4")):
    return [
        "data",
        "cache-latents",
        "--config",
        CONFIG,
        "--data-dir",
        str(out_dir),
        *encoder,
        "--batch-size",
        "4",
        "--shard-batches",
        "1",
        f"--config.data_dir={source_dir}",
        "--config.resolution=16",
        "--config.num_frames=4",
    ]


def _latents(data_dir):
    import io

    import tensorflow_datasets as tfds

    source = tfds.data_source("latents", data_dir=str(data_dir), split="train", download=False)
    return {r["key"].decode(): np.load(io.BytesIO(r["latents"])) for r in (source[i] for i in range(len(source)))}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_write_the_one_process_latents(source_dir, vae_dir, tmp_path):
    vae = ("--vae", vae_dir)  # real parameters, replicated over both processes' devices
    assert emu_cli.main(_args(source_dir, tmp_path / "one", vae)) == 0
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(2), PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emu_jax.cli",
                *_args(source_dir, tmp_path / "two", vae),
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
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(
        f"process {i}: {err[-2500:]}" for i, (_, err) in enumerate(outs)
    )
    assert "train=10" in outs[0][0] and "train=10" in outs[1][0]
    one, two = _latents(tmp_path / "one"), _latents(tmp_path / "two")
    assert len(one) == 10 and sorted(one) == sorted(two) and one["train_0000000#0"].shape == (4, 8, 8, 8)
    for key in one:
        np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-5)
    # 3 shards of one 4-clip batch; each process writes its half of each; the last shard's second half is padding.
    files = sorted(os.listdir(tmp_path / "two" / "latents" / "1.0.0"))
    assert [f for f in files if "array_record" in f] == [
        f"latents-train.array_record-{i:05d}-of-00005" for i in range(5)
    ]


SLOW_RUN = textwrap.dedent("""
    import logging, sys, time
    import jax, ml_collections
    from emu_jax.data import cli, latent_cache
    logging.basicConfig(level=logging.INFO, force=True)
    pool = jax.jit(cli.pool_encoder(4))
    def slow_encode(video):  # slow enough that the test can kill the run between shards
        time.sleep(1.5)
        return pool(video)
    cfg = ml_collections.ConfigDict(dict(name="moving_shapes", data_dir=sys.argv[1], resolution=16, num_frames=4,
                                         fps=8.0, text_max_length=64))
    latent_cache.build_latent_cache(cfg, slow_encode, data_dir=sys.argv[2], batch_size=4, shard_batches=1)
    print("done")
""")


def test_killed_run_resumes_at_shard_granularity(source_dir, tmp_path):
    assert emu_cli.main(_args(source_dir, tmp_path / "ref")) == 0
    script = tmp_path / "run.py"
    script.write_text(SLOW_RUN)
    cmd = [sys.executable, str(script), source_dir, str(tmp_path / "out")]
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    partial = tmp_path / "out" / "latents" / "1.0.0.partial"
    first = partial / "latents-train.array_record-00000-of-00003"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    written = sorted(f for f in os.listdir(partial) if f.endswith("-of-00003"))
    assert written == [first.name], written  # killed after the first shard, before the second
    stamp = os.stat(first)
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and "done" in rerun.stdout, rerun.stderr[-3000:]
    assert "train: 1 of 3 shards already written" in rerun.stderr
    final = tmp_path / "out" / "latents" / "1.0.0" / first.name
    assert (os.stat(final).st_ino, os.stat(final).st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)  # not redone
    assert not partial.exists()
    ref, out = _latents(tmp_path / "ref"), _latents(tmp_path / "out")
    assert sorted(ref) == sorted(out)
    for key in ref:
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-6, atol=1e-6)
