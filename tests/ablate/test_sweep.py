"""`emu-video ablate --sweep`: the bundled demo model sampled at two step counts, scored against the most
expensive point and by the demo's analyser (a MODULE:FUNCTION metric), resumable per point."""

import json

import pytest

from emu_jax import cli
from emu_test_utils import REPO

DEMO = str(REPO / "emu_jax" / "assets" / "demo_model")
ACC = "emu_jax.demo.ablate_metrics:attribute_accuracy"


def _prompts(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("a red circle on a black background\na blue square on a white background\n")
    return str(path)


def _argv(tmp_path, *extra):
    out = str(tmp_path / "sweep")
    return [
        "ablate",
        "--sweep",
        "--checkpoint",
        DEMO,
        "--out",
        out,
        "--prompts",
        _prompts(tmp_path),
        "--num-items",
        "2",
        *extra,
    ]


@pytest.mark.slow  # two sampling compiles of the demo model (~60 s on 2 cores)
def test_sweep_scores_points_against_reference_and_resumes(tmp_path, caplog):
    argv = _argv(tmp_path, "--methods", "ddim", "--steps", "1,3", "--metric", "ref_pixel_error", "--metric", ACC)
    assert cli.main(argv) == 0
    summary = json.loads((tmp_path / "sweep" / "ablate.json").read_text())
    assert summary["nfe"] == {"ddim-s1": 5, "ddim-s3": 15}  # steps x (2 keyframe + 3 video branches)
    assert summary["reference"] == "ddim-s3"
    values = summary["per_item"]
    assert values["ddim-s3"]["ref_pixel_error"] == [0.0, 0.0]
    assert all(v > 0 for v in values["ddim-s1"]["ref_pixel_error"])  # one step is far from three
    assert all(0.0 <= v <= 1.0 for v in values["ddim-s1"][ACC]) and len(values["ddim-s1"][ACC]) == 2
    eval_file = tmp_path / "sweep" / "arms" / "ddim-s1" / "eval.json"
    mtime = eval_file.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level("INFO", logger="emu_jax.ablate"):
        assert cli.main(argv) == 0
    assert "point ddim-s1: done (eval.json present), skipped" in caplog.text and "evaluated" not in caplog.text
    assert eval_file.stat().st_mtime_ns == mtime


@pytest.mark.parametrize(
    "extra, words",
    [
        (("--methods", "nope"), "unknown sampling method"),
        (("--steps", "two"), "--steps 'two'"),
        (("--methods", "ddim", "--metric", "denoise_loss"), "does not depend on sampler settings"),
    ],
)
def test_bad_sweep_is_one_line_before_sampling(tmp_path, capsys, extra, words):
    assert cli.main(_argv(tmp_path, *extra)) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err
    assert not (tmp_path / "sweep" / "arms").exists()


ALL = "emu_jax.demo.ablate_metrics:all_correct"


def _argv_without_prompts(tmp_path, *extra):
    return ["ablate", "--sweep", "--checkpoint", DEMO, "--out", str(tmp_path / "sweep"), "--num-items", "3", *extra]


def test_sweep_without_prompts_needs_a_metric_that_brings_them(tmp_path, capsys):
    assert cli.main(_argv_without_prompts(tmp_path, "--steps", "1,2", "--metric", "ref_pixel_error")) == 2
    err = capsys.readouterr().err
    assert "--sweep needs --prompts FILE: no metric of ['ref_pixel_error'] brings its own" in err, err
    assert err.count("\n") == 1 and not (tmp_path / "sweep").exists()


class Captured(Exception):
    pass


def test_metric_prompts_stand_in_for_prompts_and_ref_pixel_error_is_kept(tmp_path, monkeypatch):
    from emu_jax.ablate import sweep
    from emu_jax.demo import evaluate, shapes

    def capture(checkpoint, axes, out, settings):
        raise Captured(settings)

    monkeypatch.setattr(sweep, "run", capture)
    with pytest.raises(Captured) as got:
        cli.main(_argv_without_prompts(tmp_path, "--steps", "1,2", "--seed", "5", "--metric", ALL))
    settings = got.value.args[0]
    assert settings["metrics"] == ["ref_pixel_error", ALL]  # the default is computed beside --metric
    assert settings["prompts"] == [shapes.caption(w) for w in evaluate.prompt_set(3, 5)]
    with pytest.raises(Captured) as got:  # --prompts wins over a metric's own
        cli.main(_argv(tmp_path, "--steps", "1,2", "--metric", ALL))
    assert got.value.args[0]["prompts"] == ["a red circle on a black background", "a blue square on a white background"]


@pytest.mark.slow  # two sampling compiles of the demo model (~60 s on 2 cores)
def test_sweep_without_prompts_samples_once_per_point(tmp_path, monkeypatch):
    from emu_jax.sampling.pipeline import Pipeline

    calls = []
    run = Pipeline.run

    def counted(self, prompts, **kw):
        calls.append(tuple(prompts))
        return run(self, prompts, **kw)

    monkeypatch.setattr(Pipeline, "run", counted)
    argv = _argv_without_prompts(tmp_path, "--methods", "ddim", "--steps", "1,2", "--metric", ALL)
    assert cli.main(argv) == 0
    summary = json.loads((tmp_path / "sweep" / "ablate.json").read_text())
    values = summary["per_item"]
    assert summary["reference"] == "ddim-s2" and values["ddim-s2"]["ref_pixel_error"] == [0.0] * 3
    assert all(v > 0 for v in values["ddim-s1"]["ref_pixel_error"])
    assert all(v in (0.0, 1.0) for v in values["ddim-s1"][ALL]) and len(values["ddim-s1"][ALL]) == 3
    assert len(calls) == 2 and calls[0] == calls[1]  # ref_pixel_error scores the metric's own samples
