"""Every `emu-video` command fails cleanly: a user error prints one line naming the problem, exits 2,
shows no traceback and writes nothing; `--debug` / EMU_DEBUG=1 shows the traceback.

Each case runs the real CLI in a subprocess, in its own empty working folder (which must stay
empty) and reads shared inputs from one folder (which must stay byte-identical). The cases run a
few at a time: each is import + validation only, nothing is compiled.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from emu_test_utils import REPO

TINY = str(REPO / "configs" / "tiny.py") + ":t2v"
DEMO_MODEL = REPO / "emu_jax" / "assets" / "demo_model"
EVAL_FAST = ["--num-prompts", "1", "--ceiling-clips", "0", "--word-use-clips", "0", "--first-frame-clips", "0"]

# (case id, argv with {in} = the shared inputs folder, what the one error line must contain)
CASES = [
    ("unknown-command", ["frobnicate"], "unknown command 'frobnicate'"),
    ("train-bad-flag", ["train", "--config", TINY, "--workdir", "w", "--bogus"], "unrecognized arguments: --bogus"),
    ("train-missing-arg", ["train", "--config", TINY], "--workdir"),
    (
        "train-bad-type",
        ["train", "--config", TINY, "--workdir", "w", "--config.train.steps=abc"],
        "--config.train.steps='abc': expected int",
    ),
    (
        "train-bad-key",
        ["train", "--config", TINY, "--workdir", "w", "--config.train.stepz=3"],
        "unknown config key 'train.stepz'",
    ),
    ("train-missing-config", ["train", "--config", "nope.py", "--workdir", "w"], "config file 'nope.py' not found"),
    (
        "train-bad-value",
        ["train", "--config", TINY, "--workdir", "w", "--config.train.steps=0"],
        "train.steps must be >= 1, got 0",
    ),
    (
        "train-bad-stop-after",
        ["train", "--config", TINY, "--workdir", "w", "--stop-after", "0"],
        "--stop-after must be >= 1",
    ),
    (
        "train-missing-data",
        ["train", "--config", TINY, "--workdir", "w", "--config.data.data_dir={in}/nodata"],
        "is not prepared under data_dir",
    ),
    ("train-workdir-is-file", ["train", "--config", TINY, "--workdir", "{in}/afile.txt"], "is a file"),
    (
        "train-other-model",
        ["train", "--config", TINY, "--workdir", "{in}/foreign_run"],
        "model.unet.model_channels: 64 -> 32",
    ),
    (
        "train-missing-init-from",
        [
            "train",
            "--config",
            TINY,
            "--workdir",
            "w",
            "--config.data.data_dir={in}/data",
            "--config.train.init_from={in}/nothing",
        ],
        "not an emu_jax checkpoint",
    ),
    ("convert-missing-source", ["convert", "--from-diffusers", "{in}/nothing", "--out", "o"], "is not a folder"),
    (
        "convert-not-a-pipeline",
        ["convert", "--from-diffusers", "{in}/emptydir", "--out", "o"],
        "is not a diffusers text-to-image pipeline folder",
    ),
    (
        "convert-out-exists",
        ["convert", "--from-diffusers", "{in}/emptydir", "--out", "{in}/afile.txt"],
        "exists and is not an empty folder",
    ),
    (
        "convert-out-unwritable",
        ["convert", "--from-diffusers", "{in}/emptydir", "--out", "{in}/nothing/o"],
        "does not exist or is not writable",
    ),
    ("aot-bad-topology", ["aot", "--config", TINY, "--topology", "v9-8"], "unknown TPU topology 'v9-8'"),
    (
        "aot-bad-key",
        ["aot", "--config", TINY, "--topology", "v5p-8", "--config.model.unet.channelz=3"],
        "unknown config key 'model.unet.channelz'",
    ),
    (
        "aot-json-unwritable",
        ["aot", "--config", TINY, "--topology", "v5p-8", "--json", "{in}/nothing/r.json"],
        "--json",
    ),
    ("demo-bad-flag", ["demo", "eval", "--bogus"], "unrecognized arguments: --bogus"),
    (
        "demo-missing-checkpoint",
        ["demo", "eval", "--checkpoint", "{in}/nothing", *EVAL_FAST],
        "not an emu_jax checkpoint",
    ),
    (
        "demo-truncated-checkpoint",
        ["demo", "eval", "--checkpoint", "{in}/truncated", *EVAL_FAST],
        "truncated/params/d/",
    ),
    ("demo-deleted-params", ["demo", "eval", "--checkpoint", "{in}/no_params", *EVAL_FAST], "neither params/"),
    ("demo-output-is-folder", ["demo", "eval", "--output", "{in}/emptydir", *EVAL_FAST], "is a folder"),
    ("demo-bad-stage", ["demo", "train", "--workdir", "w", "--stages", "data,bogus"], "unknown stage(s) ['bogus']"),
    ("demo-bad-set", ["demo", "train", "--workdir", "w", "--set", "train.stepz=3"], "train.stepz"),
    (
        "juice-missing-folder",
        ["juice", "create", "--a", "{in}/nothing", "--b", "{in}/emptydir", "--db", "s.db"],
        "nothing",
    ),
    ("juice-missing-db", ["juice", "serve", "--db", "{in}/none.db"], "does not exist"),
    ("juice-not-a-db", ["juice", "report", "--db", "{in}/afile.txt"], "not a JUICE study database"),
    ("juice-bad-public-url", ["juice", "serve", "--db", "{in}/none.db", "--public-url", "example.org"], "--public-url"),
    (
        "data-bad-flag",
        ["data", "build", "moving_shapes", "--data-dir", "d", "--bogus"],
        "unrecognized arguments: --bogus",
    ),
    ("data-bad-out", ["data", "select-hq", "--data-dir", "{in}/data", "--out", "o.txt"], "must end in .json or .csv"),
    ("sample-bad-flag", ["sample", "--bogus"], "--bogus"),
    ("sample-missing-checkpoint", ["sample", "--checkpoint", "{in}/nothing", "--prompt", "x", "--out", "o"], "nothing"),
]


def _tree(folder) -> dict:
    return {
        os.path.relpath(os.path.join(d, f), folder): hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
        for d, _, files in os.walk(folder)
        for f in files
    } | {os.path.relpath(d, folder) + "/": "dir" for d, _, _ in os.walk(folder)}


def _foreign_run(folder) -> None:
    """A run folder whose emu_jax.json records the tiny model at 64 channels (the CLI will give 32)."""
    from emu_jax.config import load_config
    from emu_jax.models.emu import EmuConfig
    from emu_jax.training.run_meta import model_meta

    cfg = load_config(TINY)
    cfg.model.unet.model_channels = 64
    os.makedirs(folder)
    with open(os.path.join(folder, "emu_jax.json"), "w") as f:
        json.dump(model_meta(cfg, EmuConfig.from_dict(cfg.model.to_dict())), f)


def _run(argv, cwd, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("EMU_DEBUG", "XLA_FLAGS")}  # one CPU device
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO), **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "emu_jax.cli", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_shapes_dir):
    root = tmp_path_factory.mktemp("cli_inputs")
    (root / "afile.txt").write_text("not a folder, not a database\n")
    (root / "emptydir").mkdir()
    os.symlink(tiny_shapes_dir, root / "data")
    _foreign_run(str(root / "foreign_run"))
    shutil.copytree(DEMO_MODEL, root / "truncated", ignore=shutil.ignore_patterns("interp"))
    data = root / "truncated" / "params" / "d"
    for name in os.listdir(data):  # every array file cut short, as by a full disk or an interrupted copy
        with open(data / name, "r+b") as f:
            f.truncate(min(100, os.path.getsize(data / name)))
    (root / "no_params").mkdir()
    shutil.copy(DEMO_MODEL / "emu_jax.json", root / "no_params" / "emu_jax.json")
    return root


@pytest.fixture(scope="module")
def results(inputs, tmp_path_factory):
    """Run every case (3 at a time); -> {case id: (CompletedProcess, files left in its working folder)}."""
    before = _tree(inputs)
    cwd_root = tmp_path_factory.mktemp("cli_cases")

    def one(case):
        name, argv, _ = case
        cwd = cwd_root / name
        cwd.mkdir()
        out = _run([a.replace("{in}", str(inputs)) for a in argv], cwd)
        return name, (out, sorted(os.listdir(cwd)))

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        done = dict(pool.map(one, CASES))
    assert _tree(inputs) == before, "a failing command changed its inputs"
    return done


@pytest.mark.slow  # ~35 CLI subprocesses: about a minute on 2 idle cores
@pytest.mark.parametrize("name,argv,expect", CASES, ids=[c[0] for c in CASES])
def test_user_error_is_one_line_exit_2_and_writes_nothing(results, name, argv, expect):
    out, left = results[name]
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    assert len(lines) == 1, out.stderr[-2000:]
    assert lines[0].startswith(f"emu-video {argv[0]}") and ": error: " in lines[0], lines[0]
    assert expect in lines[0], lines[0]
    assert left == [], f"{name} wrote {left}"


@pytest.mark.slow
def test_debug_shows_the_traceback(tmp_path):
    argv = ["train", "--config", TINY, "--workdir", "w", "--config.train.steps=abc"]
    for extra, env in ((["--debug"], None), ([], {"EMU_DEBUG": "1"})):
        out = _run(argv + extra, tmp_path, env)
        assert out.returncode == 2 and "Traceback" in out.stderr and "expected int" in out.stderr, out.stderr
    assert os.listdir(tmp_path) == []
