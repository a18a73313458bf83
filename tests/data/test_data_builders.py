"""video_text_folder builder: bad inputs are skipped and reported, too many fail the build, clips come at fps."""

import json

import ml_collections
import numpy as np
import pytest

from emu_jax.data import builders, pipeline, video_io
from emu_jax.demo import shapes
from emu_jax.demo.dataset import MovingShapes
from test_data_video_io import index_video, read_indices  # noqa: E402  (same test directory)


def write_folder(root, *, n_good=2, bad=("corrupt", "truncated", "short", "garbage_ext", "missing")):
    """Two index videos (30 and 24 fps, 3 s) plus one file per kind of bad input; returns caption rows."""
    videos = root / "videos"
    videos.mkdir()
    rows = []
    for i in range(n_good):
        fps = (30, 24)[i % 2]
        (videos / f"good{i}.mp4").write_bytes(video_io.encode_mp4(index_video(3 * fps), fps, gop=12))
        rows.append((f"good{i}.mp4", f"index video {i} at {fps} fps"))
    full = video_io.encode_mp4(index_video(60), 30)
    payloads = {
        "corrupt": ("corrupt.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8),
        "truncated": ("truncated.mp4", full[: len(full) // 2]),
        "short": ("short.mp4", video_io.encode_mp4(index_video(5), 30)),
        "garbage_ext": ("garbage.mov", b"not a video at all" * 100),
    }
    for kind in bad:
        if kind == "missing":
            rows.append(("missing.mp4", "no such file"))
        else:
            name, data = payloads[kind]
            (videos / name).write_bytes(data)
            rows.append((name, f"bad {kind}"))
    return videos, rows


def write_csv(path, rows, header="path,caption"):
    path.write_text(header + "\n" + "".join(f'{p},"{c}"\n' for p, c in rows))
    return path


def test_bad_inputs_skipped_and_named(tmp_path):
    videos, rows = write_folder(tmp_path, n_good=10)
    captions = write_csv(tmp_path / "captions.csv", rows)
    builder = builders.VideoTextFolder(
        videos_dir=str(videos),
        captions_file=str(captions),
        min_clip_seconds=1.0,
        max_skip_fraction=0.5,
        data_dir=str(tmp_path / "tfds"),
    )
    builders.prepare(builder)
    assert builder.info.splits["train"].num_examples == 10
    report = json.loads((tmp_path / "tfds" / "video_text_folder" / "skipped.json").read_text())
    reasons = {s["path"]: s["reason"] for s in report["files"]}
    assert report["skipped"] == 5 and report["total"] == 15
    assert set(reasons) == {"corrupt.mp4", "truncated.mp4", "short.mp4", "garbage.mov", "missing.mp4"}
    assert reasons["missing.mp4"] == "missing file" and reasons["short.mp4"].startswith("too short")
    assert reasons["truncated.mp4"].startswith("unreadable") and reasons["garbage.mov"].startswith("unreadable")

    # The pipeline reads exactly num_frames at the target fps from both source rates.
    cfg = ml_collections.ConfigDict(
        dict(
            name="video_text_folder",
            data_dir=str(tmp_path / "tfds"),
            resolution=32,
            num_frames=8,
            fps=4.0,
            text_max_length=48,
            worker_count=0,
        )
    )
    loader = pipeline.make_loader(cfg, split="train", seed=0, shard_index=0, shard_count=1, batch_size=5, num_epochs=1)
    for batch in loader:
        assert batch["video"].shape == (5, 8, 32, 32, 3)
        for key, clip in zip(batch["key"], batch["video"]):
            src_fps = 30 if int(key[4:-4]) % 2 == 0 else 24
            idx = read_indices(np.round((clip + 1) * 127.5).astype(np.uint8))
            steps = set(np.diff(idx).tolist())
            assert steps <= {src_fps // 4, -(-src_fps // 4)}, (key, idx)  # 7.5 -> 7 or 8; 6 -> 6
            assert idx[-1] < 3 * src_fps


def test_too_many_skips_fail_with_names(tmp_path):
    videos, rows = write_folder(tmp_path, n_good=2)
    captions = write_csv(tmp_path / "captions.csv", rows)
    builder = builders.VideoTextFolder(
        videos_dir=str(videos), captions_file=str(captions), max_skip_fraction=0.1, data_dir=str(tmp_path / "tfds")
    )
    with pytest.raises(ValueError, match=r"5 of 7 videos skipped .*max_skip_fraction=0.1.*corrupt.mp4"):
        builders.prepare(builder)
    assert (tmp_path / "tfds" / "video_text_folder" / "skipped.json").exists()
    assert not (tmp_path / "tfds" / "video_text_folder" / "1.0.0").exists()


def test_jsonl_captions_and_test_split(tmp_path):
    videos, rows = write_folder(tmp_path, n_good=6, bad=())
    captions = tmp_path / "captions.jsonl"
    captions.write_text("".join(json.dumps({"path": p, "caption": c, "extra": 1}) + "\n" for p, c in rows))
    builder = builders.VideoTextFolder(
        videos_dir=str(videos), captions_file=str(captions), test_fraction=0.5, data_dir=str(tmp_path / "tfds")
    )
    builders.prepare(builder)
    splits = {k: v.num_examples for k, v in builder.info.splits.items()}
    assert sum(splits.values()) == 6
    record = pipeline.open_source("video_text_folder", str(tmp_path / "tfds"), "train")[0]
    assert record["caption"].decode().startswith("index video") and record["num_frames"] in (72, 90)


@pytest.mark.parametrize(
    "text,match",
    [
        ("file,text\na.mp4,hi\n", r"lacks column\(s\) \['path', 'caption'\]"),
        ("path\na.mp4\n", r"lacks column\(s\) \['caption'\]"),
    ],
)
def test_caption_columns_checked_before_any_work(tmp_path, text, match):
    (tmp_path / "videos").mkdir()
    (tmp_path / "c.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        builders.VideoTextFolder(
            videos_dir=str(tmp_path / "videos"), captions_file=str(tmp_path / "c.csv"), data_dir=str(tmp_path / "tfds")
        )
    assert not (tmp_path / "tfds").exists()
    (tmp_path / "c.jsonl").write_text('{"file": "a.mp4", "caption": "x"}\n')
    with pytest.raises(ValueError, match="needs keys"):
        builders.read_captions(tmp_path / "c.jsonl")


def test_cli_builds_moving_shapes(tmp_path, capsys):
    import argparse

    from emu_jax.data import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "build",
            "moving_shapes",
            "--data-dir",
            str(tmp_path),
            "--num-train",
            "3",
            "--num-test",
            "0",
            "--resolution",
            "16",
            "--frames",
            "4",
            "--fps",
            "4",
            "--speed-range",
            "0.2",
            "0.3",
        ]
    )
    assert cli.main(args) == 0
    assert "train=3" in capsys.readouterr().out
    source = pipeline.open_source("moving_shapes", str(tmp_path), "train")
    assert len(source) == 3
    assert all(0.2 <= float(source[i]["speed"]) <= 0.3 for i in range(3))
    with pytest.raises(ValueError, match=r"speed_range=\(0.5, 0.2\)"):
        MovingShapes(speed_range=(0.5, 0.2), data_dir=str(tmp_path / "bad"))


def test_cli_builds_a_one_look_dataset(tmp_path, capsys):
    import argparse

    from emu_jax.data import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "build",
            "moving_shapes",
            "--data-dir",
            str(tmp_path),
            "--num-train",
            "12",
            "--num-test",
            "0",
            "--resolution",
            "16",
            "--frames",
            "4",
            "--fps",
            "4",
            "--look",
            "blue",
            "square",
            "white",
        ]
    )
    assert cli.main(args) == 0
    source = pipeline.open_source("moving_shapes", str(tmp_path), "train")
    rows = [source[i] for i in range(len(source))]
    text = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731
    assert {(text(r["color"]), text(r["shape"]), text(r["background"])) for r in rows} == {("blue", "square", "white")}
    assert all(text(r["caption"]).startswith("a blue square moving ") for r in rows)
    # Only the look is fixed: the motion is still drawn at random.
    assert len({text(r["direction"]) for r in rows}) > 2 and len({float(r["size"]) for r in rows}) == 12
    for bad, match in ((("blue", "star", "white"), "look shape='star'"), (("blue", "square"), "must be")):
        with pytest.raises(ValueError, match=match):
            MovingShapes(look=bad, data_dir=str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()


def test_cli_builds_free_start_clips_of_one_size(tmp_path):
    import argparse

    from emu_jax.data import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "build",
            "moving_shapes",
            "--data-dir",
            str(tmp_path),
            "--num-train",
            "12",
            "--num-test",
            "0",
            "--resolution",
            "16",
            "--frames",
            "4",
            "--fps",
            "4",
            "--start",
            "free",
            "--speed-range",
            "0.4",
            "0.4",
            "--size-range",
            "0.3",
            "0.3",
        ]
    )
    assert cli.main(args) == 0
    source = pipeline.open_source("moving_shapes", str(tmp_path), "train")
    rows = [source[i] for i in range(len(source))]
    assert {round(float(r["size"]), 4) for r in rows} == {0.3}
    # Every clip starts where all eight directions fit, whichever it moves in.
    h = shapes.overhang(0.3)
    assert all(0.4 - h - 1e-6 <= float(r[k]) <= 0.6 + h + 1e-6 for r in rows for k in ("start_x", "start_y"))
    builder = MovingShapes(
        data_dir=str(tmp_path),
        resolution=16,
        num_frames=4,
        fps=4,
        num_train=12,
        num_test=0,
        start="free",
        speed_range=(0.4, 0.4),
        size_range=(0.3, 0.3),
    )
    assert builder.info.metadata["build"]["start"] == "free"
    for kwargs, match in (
        (dict(start="corner"), "start='corner'"),
        (dict(size_range=(0.3, 1.2)), "size_range"),
        (dict(start="free", speed_range=(1.0, 1.0)), "start='free' needs speeds"),
    ):
        with pytest.raises(ValueError, match=match):
            MovingShapes(data_dir=str(tmp_path / "bad"), **kwargs)
    assert not (tmp_path / "bad").exists()


def test_cli_select_hq_output_feeds_the_loader_subset(tmp_path, capsys):
    import argparse

    from emu_jax.data import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    data_dir = str(tmp_path / "tfds")
    assert (
        cli.main(
            parser.parse_args(
                [
                    "build",
                    "moving_shapes",
                    "--data-dir",
                    data_dir,
                    "--num-train",
                    "6",
                    "--num-test",
                    "0",
                    "--resolution",
                    "16",
                    "--frames",
                    "12",
                ]
            )
        )
        == 0
    )
    out = tmp_path / "hq.json"
    # A threshold between the videos' scores keeps some and drops others.
    scores = sorted(s["motion"] for s in _select(parser, data_dir, out, 0.0)["selected"])
    threshold = (scores[1] + scores[2]) / 2
    result = _select(parser, data_dir, out, threshold)
    assert len(result["selected"]) == sum(s > threshold for s in scores) and result["rejected"]["motion"] >= 2
    cfg = ml_collections.ConfigDict(
        dict(
            name="moving_shapes",
            data_dir=data_dir,
            resolution=16,
            num_frames=4,
            fps=8.0,
            text_max_length=64,
            subset_file=str(out),
        )
    )
    loader = pipeline.make_loader(cfg, split="train", seed=0, shard_index=0, shard_count=1, batch_size=1, num_epochs=1)
    assert sorted(k for b in loader for k in b["key"]) == sorted(s["key"] for s in result["selected"])
    capsys.readouterr()
    assert (
        cli.main(
            parser.parse_args(
                ["select-hq", "--data-dir", data_dir, "--dataset", "moving_shapes", "--out", str(tmp_path / "x.txt")]
            )
        )
        == 2
    )  # usage errors exit 2
    assert "must end in .json or .csv" in capsys.readouterr().err


def _select(parser, data_dir, out, threshold):
    from emu_jax.data import cli

    assert (
        cli.main(
            parser.parse_args(
                [
                    "select-hq",
                    "--data-dir",
                    data_dir,
                    "--dataset",
                    "moving_shapes",
                    "--out",
                    str(out),
                    "--motion-threshold",
                    str(threshold),
                ]
            )
        )
        == 0
    )
    return json.loads(out.read_text())


def test_subset_file_from_another_split_is_rejected(tmp_path):
    path = tmp_path / "hq.json"
    path.write_text(json.dumps({"dataset": "moving_shapes", "split": "test", "selected": [{"index": 0}]}))
    with pytest.raises(ValueError, match="split 'test'"):
        pipeline.load_subset_indices(str(path), name="moving_shapes", split="train")
    (tmp_path / "hq.csv").write_text('index,key,motion\n3,a,1.0\n1,"b,c",2.0\n')
    assert pipeline.load_subset_indices(str(tmp_path / "hq.csv")) == [3, 1]
