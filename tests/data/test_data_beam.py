"""Beam runs (DirectRunner, 2 processes) give the serial build's records and skip report, and select-hq's
selection; without Beam installed `--beam` fails in one line naming the extra."""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("apache_beam")

from emu_jax.data import cli, pipeline, video_io  # noqa: E402
from emu_jax.demo import dataset as _registers_moving_shapes  # noqa: E402, F401
from emu_jax.demo import shapes  # noqa: E402

BEAM = ["--beam", "--beam-options", "--direct_num_workers=2 --direct_running_mode=multi_processing"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """20 video files: 16 moving shapes (2 s at 8 fps), 4 broken; one of the good ones has no caption row, and
    one row names a file that does not exist."""
    root = tmp_path_factory.mktemp("folder")
    videos = root / "videos"
    (videos / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(16):
        name = f"sub/clip{i:02d}.mp4" if i % 4 == 0 else f"clip{i:02d}.mp4"
        attrs = shapes.sample_attributes(rng)
        (videos / name).write_bytes(video_io.encode_mp4(shapes.render_clip(attrs, 16, 32, 8), 8))
        if i != 7:  # clip07 has no caption: not part of the dataset
            rows.append((name, shapes.caption(attrs)))
    good = video_io.encode_mp4(shapes.render_clip(shapes.sample_attributes(rng), 16, 32, 8), 8)
    for name, data in {
        "corrupt.mp4": b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8,
        "truncated.mp4": good[: len(good) // 3],
        "garbage.webm": b"not a video" * 99,
        "short.mp4": video_io.encode_mp4(shapes.render_clip(shapes.sample_attributes(rng), 4, 32, 8), 8),
    }.items():
        (videos / name).write_bytes(data)
        rows.append((name, f"broken {name}"))
    rows.insert(3, ("missing.mp4", "a row without its file"))
    captions = root / "captions.csv"
    captions.write_text("path,caption\n" + "".join(f'{p},"{c}"\n' for p, c in rows))
    return videos, captions, root


def _main(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.main(parser.parse_args(list(argv)))


def _records(data_dir):
    source = pipeline.open_source("video_text_folder", data_dir, "train")
    return {
        r["key"].decode(): {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in r.items()}
        for r in (source[i] for i in range(len(source)))
    }


@pytest.mark.slow  # two Beam pipelines in fresh worker processes: 28-45 s on a loaded 2-core host
def test_beam_build_and_select_match_serial(folder, tmp_path):
    videos, captions, _ = folder
    common = [
        "build",
        "video_text_folder",
        "--videos",
        str(videos),
        "--captions",
        str(captions),
        "--max-skip-fraction",
        "0.5",
    ]
    serial_dir, beam_dir = str(tmp_path / "serial"), str(tmp_path / "beam")
    assert _main(*common, "--data-dir", serial_dir) == 0
    assert _main(*common, "--data-dir", beam_dir, *BEAM) == 0
    serial, beamed = _records(serial_dir), _records(beam_dir)
    assert len(serial) == 15 and "clip07.mp4" not in serial and "sub/clip04.mp4" in serial
    assert serial == beamed  # same keys, same video bytes, captions and metadata
    reports = [
        json.loads(open(os.path.join(d, "video_text_folder", "skipped.json")).read()) for d in (serial_dir, beam_dir)
    ]
    assert reports[0] == reports[1] and reports[0]["total"] == 20 and reports[0]["skipped"] == 5
    assert [f["path"] for f in reports[0]["files"]] == [
        "missing.mp4",
        "corrupt.mp4",
        "truncated.mp4",
        "garbage.webm",
        "short.mp4",
    ]
    for d in (serial_dir, beam_dir):  # no temporary folders left: the dataset and the report only
        assert sorted(os.listdir(d)) == ["video_text_folder"]
        assert sorted(os.listdir(os.path.join(d, "video_text_folder"))) == ["1.0.0", "skipped.json"]

    # select-hq: a threshold between the scores and a CLIP file covering some keys exercise every rule.
    clip = tmp_path / "clip.jsonl"
    clip.write_text(
        "".join(
            json.dumps({"path": k, "score": 0.5 if i % 3 else 0.1}) + "\n"
            for i, k in enumerate(sorted(serial))
            if i % 5
        )
    )
    results = []
    for extra in ([], BEAM):
        out = tmp_path / f"hq{len(extra)}.json"
        assert (
            _main(
                "select-hq",
                "--data-dir",
                serial_dir,
                "--out",
                str(out),
                "--motion-threshold",
                "0",
                "--clip-scores",
                str(clip),
                *extra,
            )
            == 0
        )
        results.append(json.loads(out.read_text()))
    assert results[0] == results[1]
    assert len(results[0]["selected"]) >= 3 and results[0]["rejected"]["clip"] >= 3


def test_beam_without_apache_beam_names_the_extra(folder, tmp_path, monkeypatch, capsys):
    videos, captions, _ = folder
    build = [
        "build",
        "video_text_folder",
        "--videos",
        str(videos),
        "--captions",
        str(captions),
        "--data-dir",
        str(tmp_path / "d"),
        "--beam",
    ]
    code = "import sys; sys.modules['apache_beam'] = None; from emu_jax.cli import main; sys.exit(main(sys.argv[1:]))"
    p = subprocess.run(
        [sys.executable, "-c", code, "data", *build],
        capture_output=True,
        text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        timeout=300,
    )
    errors = [(p.returncode, p.stderr.strip())]
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # the same block, in this process, for select-hq
    rc = _main("select-hq", "--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "o.json"), "--beam")
    errors.append((rc, capsys.readouterr().err.strip()))
    for rc, err in errors:
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert "pip install 'emu-jax[beam]'" in err and "--beam needs Apache Beam" in err
    assert not (tmp_path / "d").exists()
    # Without --beam the same blocked import does not matter: the serial build needs no Beam.
    assert (
        _main(
            "build",
            "moving_shapes",
            "--data-dir",
            str(tmp_path / "serial"),
            "--num-train",
            "2",
            "--num-test",
            "0",
            "--resolution",
            "16",
            "--frames",
            "4",
        )
        == 0
    )


def test_moving_shapes_beam_build_matches_serial(tmp_path):
    args = ["build", "moving_shapes", "--num-train", "4", "--num-test", "2", "--resolution", "16", "--frames", "4"]
    assert _main(*args, "--data-dir", str(tmp_path / "serial")) == 0
    assert _main(*args, "--data-dir", str(tmp_path / "beam"), *BEAM) == 0
    for split in ("train", "test"):
        a, b = (pipeline.open_source("moving_shapes", str(tmp_path / d), split) for d in ("serial", "beam"))
        by_key = [{r["key"]: bytes(r["video"]) + r["caption"] for r in (s[i] for i in range(len(s)))} for s in (a, b)]
        assert len(by_key[0]) == (4 if split == "train" else 2) and by_key[0] == by_key[1]


def test_beam_options_fill_direct_runner_defaults_and_reject_bad_words():
    from emu_jax.data import beam
    from emu_jax.errors import UserError

    opts = beam.pipeline_options("--direct_num_workers=3").get_all_options()
    assert opts["runner"] == "DirectRunner" and opts["direct_num_workers"] == 3
    assert opts["direct_running_mode"] == "multi_processing"
    flink = beam.pipeline_options("--runner=FlinkRunner --parallelism=4").get_all_options(retain_unknown_options=True)
    assert flink["runner"] == "FlinkRunner" and flink["direct_running_mode"] == "in_memory"  # ours not added
    for bad, match in (("runner=DirectRunner", "is not a --flag"), ("--a='x", "does not parse")):
        with pytest.raises(UserError, match=match):
            beam.pipeline_options(bad)
