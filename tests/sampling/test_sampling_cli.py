"""`emu-video sample` on saved tiny checkpoints: files, fps, JSON, image-to-video, bad input, NaN."""

import argparse
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from emu_jax.data import video_io
from emu_jax.data.images import prepare_image
from emu_jax.sampling import cli as sample
from emu_jax.sampling.pipeline import Pipeline
from sampling_helpers import REPO, save


def parse(*argv):
    parser = argparse.ArgumentParser()
    sample.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, f_model, i_model):
    """F saved as an exported model folder with I in its `interp/` sub-folder."""
    path = str(tmp_path_factory.mktemp("ckpt") / "f")
    save(f_model, path)
    save(i_model, os.path.join(path, "interp"))
    return path


@pytest.mark.slow
def test_cli_writes_keyframe_videos_gifs_and_json(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    rc = sample.main(
        parse(
            "--checkpoint",
            ckpt,
            "--prompt",
            "a red circle",
            "--prompt",
            "Blue square, moving!",
            "--steps",
            2,
            "--interp-steps",
            1,
            "--batch-size",
            2,
            "--seed",
            7,
            "--out",
            out,
            "--quiet",
        )
    )
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "done: 2 prompt(s)" in stdout
    for stem in ("0000_a-red-circle", "0001_blue-square-moving"):
        rec = json.loads((out / f"{stem}.json").read_text())
        assert rec["prompt_index"] == int(stem[:4]) and rec["seed"] == 7
        assert rec["settings"]["num_steps"] == 2 and rec["settings"]["guidance_image"] == 2.0
        assert rec["interp_settings"]["num_steps"] == 1  # --interp-steps sets I's steps alone
        assert rec["stages"] == ["keyframe", "video", "interp", "decode"]
        assert rec["video"] == f"{stem}_16fps.mp4" and rec["gif"] == f"{stem}_16fps.gif"
        base = video_io.probe(str(out / f"{stem}.mp4"))
        assert (base.num_frames, base.fps, base.width) == (8, 8.0, 32)
        fast = video_io.probe(str(out / rec["video"]))
        assert (fast.num_frames, fast.fps) == (16, 16.0) == (rec["num_frames"], rec["fps"])
        assert Image.open(out / f"{stem}_keyframe.png").size == (32, 32)
        assert Image.open(out / f"{stem}.gif").n_frames == 8
        assert set(rec["timings_s"]) == {"keyframe", "video", "interp", "decode"}


def test_cli_image_to_video_reports_the_resize(ckpt, tmp_path, capsys):
    img = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "start.png")
    out = tmp_path / "out"
    rc = sample.main(
        parse(
            "--checkpoint",
            ckpt,
            "--prompt",
            "go",
            "--image",
            tmp_path / "start.png",
            "--steps",
            1,
            "--no-interp",
            "--out",
            out,
            "--quiet",
        )
    )
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "48x40: resized" in stdout and "centre-cropped to 32x32" in stdout
    rec = json.loads((out / "0000_go.json").read_text())
    assert rec["stages"] == ["encode_image", "video", "decode"] and "resized" in rec["image"]["note"]
    assert rec["video"] == "0000_go.mp4" and any("interpolation skipped by request" in n for n in rec["notes"])
    want, _ = prepare_image(str(tmp_path / "start.png"), 32)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "0000_go_keyframe.png")), want)


@pytest.fixture
def no_compile(monkeypatch):
    """Fail the test if the CLI gets as far as building the pipeline."""

    def boom(*a, **k):
        raise AssertionError("validation should have failed before loading / compiling")

    monkeypatch.setattr(Pipeline, "from_checkpoint", boom)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--prompt", "  "], "--prompt number 1 is empty"),
        (["--prompt", "x", "--image", "/no/such.png"], "'/no/such.png' does not exist"),
        (["--prompt", "x", "--image", "BADIMAGE"], "cannot read image"),
        (["--prompt", "x", "--guidance-text", "nan"], "guidance --guidance-text must be a finite number >= 0, got nan"),
        (["--prompt", "x", "--guidance-image", "-1"], "--guidance-image must be a finite number >= 0, got -1.0"),
        (["--prompt", "x", "--steps", "0"], "--steps must be >= 1, got 0"),
        (["--prompt", "x", "--interp-steps", "0"], "--interp-steps must be >= 1, got 0"),
        (["--prompt", "x", "--steps", "1001"], r"num_steps must be an integer in [1, 1000], got 1001"),
        (["--prompt", "x", "--sampler", "heun"], "unknown --sampler 'heun'"),
        (["--prompt", "x", "--param-dtype", "fp16"], "unknown --param-dtype 'fp16'; allowed: stored, float32"),
        (["--prompt", "x", "--guidance-passes", "parallel"], "unknown --guidance-passes 'parallel'; allowed: batched"),
        (["--prompt", "x", "--checkpoint", "EMPTYDIR"], "not an emu_jax checkpoint"),
        (["--prompt", "x", "--interp-checkpoint", "CKPT"], "is a 't2v' model, not an interpolation model"),
    ],
)
def test_bad_input_refused_before_compile(ckpt, tmp_path, capsys, no_compile, extra, message):
    (tmp_path / "bad.png").write_text("not an image")
    (tmp_path / "empty").mkdir()
    subst = {"BADIMAGE": str(tmp_path / "bad.png"), "EMPTYDIR": str(tmp_path / "empty"), "CKPT": ckpt}
    argv = ["--checkpoint", ckpt, "--out", tmp_path / "out"] + [subst.get(a, a) for a in extra]
    assert sample.main(parse(*argv)) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not (tmp_path / "out").exists()


def test_nan_in_latents_names_the_stage_and_writes_nothing(f_model, tmp_path, capsys):
    bad = jax.tree.map(np.copy, f_model.params)
    bad["unet"]["conv_out"]["bias"][:] = np.nan
    path = save(f_model, str(tmp_path / "nan_ckpt"), bad)
    out = tmp_path / "out"
    rc = sample.main(parse("--checkpoint", path, "--prompt", "x", "--steps", 1, "--out", out, "--quiet"))
    assert rc == 1
    assert "stage 'keyframe' produced NaN/Inf values for prompt index(es) [0]" in capsys.readouterr().err
    assert not [p for p in out.iterdir() if p.suffix in (".mp4", ".gif", ".png", ".json")]


def test_help_from_module_and_dispatcher():
    res = subprocess.run(
        [sys.executable, "-m", "emu_jax.sampling.cli", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert res.returncode == 0 and "--guidance-keyframe" in res.stdout and "--interp-checkpoint" in res.stdout
    text = " ".join(res.stdout.split())  # the bundled model's own defaults, not the recipe's 7.5 / 250
    assert "bundled model: 4.0)" in text and "bundled model: 25)" in text and "--mesh" in text
    from emu_jax import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["sample", "--help"])
    assert e.value.code == 0
