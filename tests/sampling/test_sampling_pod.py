"""`emu-video sample --prompts-file` at pod scale: the same items from any batch size, device count and
process count; resumable after kill -9; another command into the same folder refused."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from emu_test_utils import xla_flags
from sampling_helpers import REPO, save

pytestmark = pytest.mark.slow

PROMPTS = [
    f"{c} {s} moving {d}"
    for c, s, d in zip(
        ["red", "blue", "green", "yellow", "red", "blue", "green", "yellow", "red", "blue"],
        ["circle", "square", "triangle", "circle", "square", "triangle", "circle", "square", "triangle", "circle"],
        ["left", "right", "up", "down", "left", "right", "up", "down", "left", "right " * 20],
    )
]  # the last: truncated


@pytest.fixture(scope="module")
def setup(tmp_path_factory, f_model):
    root = tmp_path_factory.mktemp("pod")
    ckpt = save(f_model, str(root / "f"))
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    return root, ckpt, str(prompts)


def _argv(ckpt, prompts, out, *extra):
    return [
        sys.executable,
        "-m",
        "emu_jax.sampling.cli",
        "--checkpoint",
        ckpt,
        "--prompts-file",
        prompts,
        "--steps",
        "1",
        "--seed",
        "5",
        "--no-interp",
        "--save-frames",
        "--out",
        str(out),
        *extra,
    ]


def _env(devices):
    return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(devices))


def _run(argv, devices=1, check=True):
    res = subprocess.run(argv, env=_env(devices), capture_output=True, text=True, timeout=900, cwd=REPO)
    if check:
        assert res.returncode == 0, res.stderr[-3000:]
    return res


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _items(out):
    """index -> (record, frames) of every finished item in `out`."""
    found = {}
    for name in sorted(os.listdir(out)):
        if name.endswith(".json") and name != "manifest.json" and not name.startswith("."):  # .tmp-*: unfinished
            rec = json.loads((out / name).read_text())
            assert rec["prompt_index"] not in found, f"item {rec['prompt_index']} written twice"
            found[rec["prompt_index"]] = (rec, dict(np.load(out / rec["files"]["frames"])))
    return found


def _assert_same(a, b):
    assert sorted(a) == sorted(b) == list(range(len(PROMPTS)))
    for i in a:
        (ra, fa), (rb, fb) = a[i], b[i]
        assert ra["noise_sha256"] == rb["noise_sha256"] and ra["noise_sha256"]  # bit-identical initial noise
        for k in fa:
            diff = np.abs(fa[k].astype(int) - fb[k].astype(int)).max()
            assert diff <= 2, f"item {i} {k}: frames differ by {diff}"


@pytest.fixture(scope="module")
def reference(setup):
    root, ckpt, prompts = setup
    out = root / "ref"
    res = _run(_argv(ckpt, prompts, out, "--batch-size", "4"), devices=1)
    assert "items 10/10 done" in res.stderr and "ETA" in res.stderr
    return _items(out)


def test_reference_run_writes_manifest_with_warnings(setup, reference):
    root, _, _ = setup
    man = json.loads((root / "ref" / "manifest.json").read_text())
    assert man["num_items"] == man["num_done"] == 10 and {it["status"] for it in man["items"]} == {"done"}
    assert man["run"]["settings"]["num_steps"] == 1 and man["run"]["seed"] == 5
    assert any("truncated" in w for w in man["items"][9]["warnings"])
    assert man["items"][0]["warnings"] == []
    assert len({r["noise_sha256"]["keyframe"] for r, _ in reference.values()}) == 10  # every item its own noise
    assert not [n for n in os.listdir(root / "ref") if n.startswith(".tmp-")]


def test_eight_devices_with_sharded_params_match(setup, reference):
    root, ckpt, prompts = setup
    out = root / "mesh8"
    _run(_argv(ckpt, prompts, out, "--batch-size", "2", "--mesh", "data=2,fsdp=2,tensor=2"), devices=8)
    _assert_same(reference, _items(out))


def test_two_processes_match(setup, reference):
    root, ckpt, prompts = setup
    out, port = root / "two", _free_port()
    procs = [
        subprocess.Popen(
            _argv(
                ckpt,
                prompts,
                out,
                "--batch-size",
                "3",
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ),
            env=_env(1),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    written = [{int(m.group(1)) for m in re.finditer(r"^\[(\d+)\] ", o, re.M)} for o, _ in outs]
    assert written[0] and written[1] and not written[0] & written[1]  # each process wrote its own share
    _assert_same(reference, _items(out))


def test_kill_resume_and_refuse_another_command(setup, reference):
    root, ckpt, prompts = setup
    out = root / "killed"
    argv = _argv(ckpt, prompts, out, "--batch-size", "1")
    proc = subprocess.Popen(argv, env=_env(1), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600

    def finished():  # manifest + items, not the .tmp-* files of a write in flight
        return [n for n in os.listdir(out) if n.endswith(".json") and not n.startswith(".")] if out.exists() else []

    while time.time() < deadline and len(finished()) < 4:  # manifest + 3 items
        time.sleep(0.2)
    proc.kill()  # SIGKILL mid-file
    proc.wait()
    before = len(_items(out))
    assert 3 <= before < 10
    res = _run(argv)
    assert f"{before} of 10 item(s) already done" in res.stdout
    _assert_same(reference, _items(out))
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]
    # Another command (other seed) into the folder: one line, exit 2, nothing changed.
    snapshot = {n: os.path.getmtime(out / n) for n in os.listdir(out)}
    other = list(argv)
    other[other.index("--seed") + 1] = "6"
    bad = _run(other, check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "different seed" in bad.stderr and "--overwrite" in bad.stderr
    assert snapshot == {n: os.path.getmtime(out / n) for n in os.listdir(out)}
