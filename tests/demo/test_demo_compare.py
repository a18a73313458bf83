"""`emu-video demo compare`: two eval reports paired prompt by prompt."""

from __future__ import annotations

import copy
import json
import pathlib

import pytest

from emu_jax import cli
from emu_jax.demo import compare, evaluate

SHIPPED_REPORT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "demo_eval.json"


@pytest.fixture(scope="module")
def report():
    return json.loads(SHIPPED_REPORT.read_text())


def test_per_prompt_values_average_to_the_reports_own_summary(report):
    """The per-prompt values re-derive every summary field the shipped 200-prompt report has."""
    values = compare.per_prompt(report, evaluate.prompt_set(report["num_prompts"], report["seed"]))
    model = report["model"]
    for key, v in values.items():
        want = model[key] / report["num_prompts"] if key == "jumpy_not_in_f" else model[key]  # a count there
        assert v.mean() == pytest.approx(want), key
    assert {"direction_accuracy", "all_correct", "consistent_fraction", "jumpy_not_in_f"} <= values.keys()


def test_paired_differences_on_the_shared_prompts(report, tmp_path, capsys):
    """A NEW report with fewer prompts is compared on BASE's first ones; flipped rows show as exact paired
    differences, resolved when they are many, and an identical report differs by exactly 0."""
    new = copy.deepcopy(report)
    new["per_prompt"] = new["per_prompt"][:100]
    wanted = evaluate.prompt_set(100, report["seed"])
    wrong = 0
    for row, w in zip(new["per_prompt"], wanted):
        if row["direction"] == w.direction and wrong < 30:
            row["direction"], wrong = "none", wrong + 1
    for row in new["per_prompt"][:10]:
        row["jump_ratio"] = 5.0
    out = tmp_path / "cmp.json"
    assert cli.main(["demo", "compare", _write(tmp_path, new), str(SHIPPED_REPORT), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["num_prompts"] == 100
    d = result["measures"]["direction_accuracy"]
    assert d["diff"]["mean"] == pytest.approx(-30 / 100) and d["diff"]["excludes_zero"]
    assert d["base"] == pytest.approx(
        sum(r["direction"] == w.direction for r, w in zip(report["per_prompt"], wanted)) / 100
    )
    f = result["measures"]["f_video_direction_accuracy"]["diff"]
    assert f["mean"] == 0 and f["lo"] == 0 == f["hi"] and not f["excludes_zero"]  # F's video untouched
    assert result["measures"]["jumpy_fraction"]["new"] >= 0.10
    text = capsys.readouterr().out
    assert "100 shared prompts (seed 1234)" in text and "direction_accuracy" in text and " *" in text

    same = compare.compare(report, report)
    assert all(m["diff"]["mean"] == 0 and not m["diff"]["excludes_zero"] for m in same["measures"].values())

    # A keyframe-only (t2i) report has no motion: only its attributes are compared.
    keyframes = copy.deepcopy(report)
    keyframes["per_prompt"] = [
        {k: v for k, v in row.items() if "jump" not in k and not k.startswith("f_")} for row in keyframes["per_prompt"]
    ]
    still = compare.compare(keyframes, keyframes)
    assert "jumpy_fraction" not in still["measures"] and "median_jump_ratio" not in still
    assert still["measures"]["color_accuracy"]["new"] == report["model"]["color_accuracy"]


def _write(tmp_path, report, name="new.json"):
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return str(path)


def test_reports_that_cannot_be_paired_are_one_line_exit_2(report, tmp_path, capsys):
    base = _write(tmp_path, report, "base.json")
    other_seed = _write(tmp_path, {**report, "seed": 7}, "seed.json")
    shuffled = copy.deepcopy(report)
    shuffled["per_prompt"][3]["prompt"] = "a red circle moving up on a black background"
    shuffled = _write(tmp_path, shuffled, "shuffled.json")
    (tmp_path / "broken.json").write_text("{not json")
    cases = [
        ([other_seed, base], "the reports sampled different prompts: seed 7 vs 1234"),
        ([shuffled, base], "NEW's prompt 3 is 'a red circle moving up on a black background', not seed 1234's"),
        ([str(tmp_path / "missing.json"), base], "cannot read report"),
        ([str(tmp_path / "broken.json"), base], "cannot read report"),
        ([_write(tmp_path, [1, 2], "list.json"), base], "is not a `demo eval` report"),
        ([_write(tmp_path, {"seed": 1}, "empty.json"), base], "NEW is not a `demo eval` report with per-prompt rows"),
        ([_write(tmp_path, {"seed": 1234, "per_prompt": [[]]}, "rows.json"), base], "NEW's prompt 0 is None"),
    ]
    for argv, message in cases:
        assert cli.main(["demo", "compare", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
