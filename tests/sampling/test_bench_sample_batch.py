"""benchmarks/bench_sample_batch.py run tiny (1 round, 1 step, 3 prompts at batch 2: a padded last batch),
with and without interpolation: a table row and every item's files per variant; bad flags refused."""

import sys

import pytest

from sampling_helpers import REPO

sys.path.insert(0, f"{REPO}/benchmarks")
import bench_sample_batch  # noqa: E402


@pytest.mark.slow  # compiles the demo model's stages for one batch size (~70 s on 2 shared cores)
def test_tiny_invocation_does_what_sample_does_for_every_variant(capsys):
    got = bench_sample_batch.main(["--batches", "2", "--prompts", "3", "--rounds", "1", "--steps", "1"])
    assert set(got["rows"]) == set(got["warm"]) == {(2, True), (2, False)} and got["prompts"] == 3
    assert all(len(v) == 2 and min(v) > 0 for v in got["rows"].values())  # (median s, min s)
    assert set(got["compile_s"]) == {2}
    for (_, interp), files in got["files"].items():  # every item's files, as `emu-video sample` writes them
        assert sum(f.endswith(".json") for f in files) == 3, files
        assert sum(f.endswith("_keyframe.png") for f in files) == 3, files
        assert sum(f.endswith("_16fps.mp4") for f in files) == (3 if interp else 0), files
        assert len(files) == 3 * (6 if interp else 4), files
    out = capsys.readouterr().out
    assert out.startswith("load at start") and "load at end" in out and "1 ddim steps" in out
    assert "+ interpolation + decode" in out and out.count("\n    2 ") == 2  # one table row per variant


@pytest.mark.parametrize("argv", [["--batches", "0,2"], ["--batches", "two"], ["--rounds", "0"]])
def test_bad_flags_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        bench_sample_batch.main(argv)
    assert e.value.code == 2 and "--" in capsys.readouterr().err
