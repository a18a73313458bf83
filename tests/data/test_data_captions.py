"""The captions file is validated before any video is probed: one line naming the file, exit 2, nothing written."""

import argparse

import pytest

from emu_jax.data import cli, video_io


def _run(tmp_path, captions_name, content: bytes, capsys, monkeypatch):
    videos = tmp_path / "videos"
    videos.mkdir(exist_ok=True)
    (videos / "a.mp4").write_bytes(b"never probed")
    (tmp_path / captions_name).write_bytes(content)

    def no_probe(*a, **k):
        raise AssertionError("a video was probed before the captions file was validated")

    monkeypatch.setattr(video_io, "probe", no_probe)
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    rc = cli.main(
        parser.parse_args(
            [
                "build",
                "video_text_folder",
                "--videos",
                str(videos),
                "--captions",
                str(tmp_path / captions_name),
                "--data-dir",
                str(tmp_path / "tfds"),
            ]
        )
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert not (tmp_path / "tfds").exists()  # nothing left behind
    return err


@pytest.mark.parametrize(
    "name,content,expected",
    [
        ("c.csv", "path,caption\na.mp4,caf\xe9 au lait\n".encode("latin-1"), r"c.csv:2 is not UTF-8 .*0xe9"),
        ("c.csv", b"path,caption\na.mp4\n", r"c.csv:2: caption is missing"),
        ("c.csv", b'path,caption\na.mp4,"  "\n', r"c.csv:2: caption is '  '"),
        ("c.csv", b"path,caption\n,hello\n", r"c.csv:2: path is ''"),
        ("c.csv", b"path,caption\n../a.mp4,hi\n", r"c.csv:2: path '../a.mp4' leaves --videos"),
        ("c.csv", b"path,caption\n/etc/a.mp4,hi\n", r"c.csv:2: path '/etc/a.mp4' leaves --videos"),
        ("c.jsonl", b'{"path": "a.mp4", "caption": ""}\n', r"c.jsonl:1: caption is ''"),
        ("c.jsonl", b'{"path": "a.mp4", "caption": null}\n', r"c.jsonl:1: caption is missing"),
        ("c.jsonl", b'{"path": "a.mp4", "caption": "x"\n', r"c.jsonl:1 is not valid JSON"),
        ("c.csv", b"path,caption\n", r"c.csv has no rows"),
        ("c.txt", b"path,caption\na.mp4,x\n", r"must end in .csv"),
    ],
)
def test_bad_captions_file_fails_in_one_line_before_probing(tmp_path, capsys, monkeypatch, name, content, expected):
    import re

    err = _run(tmp_path, name, content, capsys, monkeypatch)
    assert re.search(expected, err), err
    assert err.startswith("emu-video data build: error: ")


def test_bom_header_is_read_as_path_caption():
    import tempfile

    from emu_jax.data import captions

    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/c.csv"
        with open(path, "w", encoding="utf-8-sig") as f:  # what spreadsheet programs write
            f.write('path,caption\nsub/a.mp4,un caf\u00e9\n\nb.mp4,"two, words"\n')
        rows = captions.read_captions(path, d)
    assert [(r["path"], r["caption"]) for r in rows] == [("sub/a.mp4", "un caf\u00e9"), ("b.mp4", "two, words")]
