"""The demo recipe end to end at the tiny size: every stage trains 2 steps, resumes, exports a loadable model."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax import checkpoint_io
from emu_jax.demo import analyse, recipe


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo_recipe")
    # First call stops every stage after 1 step: the recipe halts at the unfinished VAE stage.
    first = recipe.run_recipe(workdir, "tiny", stop_after=1)
    second = recipe.run_recipe(workdir, "tiny")  # resumes the VAE, then runs the rest
    return workdir, first, second


@pytest.mark.slow  # the tiny recipe fixture trains every stage (~100 s)
def test_recipe_stops_then_resumes_every_stage(tiny_recipe):
    workdir, first, second = tiny_recipe
    assert first["stages"]["vae"]["done"] is False and "t2i" not in first["stages"]
    assert all(second["stages"][s]["done"] for s in recipe.STAGES), second
    vae_steps = [json.loads(line)["step"] for line in (workdir / "vae" / "metrics.jsonl").read_text().splitlines()]
    assert vae_steps == [1, 2]  # step 2 continued from the saved step 1, not from scratch
    for stage in recipe.TRAIN_STAGES:
        assert second["stages"][stage]["seconds"] > 0
    # A third run has nothing left to do and changes no checkpoint.
    before = sorted(p.name for p in (workdir / "t2v" / "checkpoints").iterdir())
    third = recipe.run_recipe(workdir, "tiny")
    assert sorted(p.name for p in (workdir / "t2v" / "checkpoints").iterdir()) == before
    assert third["stages"]["t2v"]["seconds"] < second["stages"]["t2v"]["seconds"] + 5


@pytest.mark.slow
def test_exported_model_folders_load_with_their_roles(tiny_recipe):
    workdir, _, second = tiny_recipe
    folder = workdir / recipe.EXPORT
    assert second["stages"]["export"]["folder"] == str(folder)
    meta_f, params_f = checkpoint_io.load_checkpoint(str(folder))
    meta_i, params_i = checkpoint_io.load_checkpoint(str(folder / "interp"))
    assert meta_f["task"] == "t2v" and meta_i["task"] == "interp"
    assert meta_i["model"]["unet"]["cond_level_embed"] and not meta_f["model"]["unet"]["cond_level_embed"]
    assert meta_i["slots"] == {"num_given": 4, "factor": 2, "pad": 1}
    scale = json.loads((workdir / "vae" / "latent_scale.json").read_text())
    assert meta_f["model"]["vae"]["scaling_factor"] == pytest.approx(scale["scaling_factor"])
    # F carries the VAE trained in the first stage and I carries F's spatial layers.
    _, vae_run = checkpoint_io.load_checkpoint(str(workdir / "vae"))
    k = "conv_in"
    assert (params_f["vae"]["encoder"][k]["kernel"] == vae_run["vae"]["encoder"][k]["kernel"]).all()
    kernel_i = np.asarray(params_i["unet"]["conv_in"]["kernel"])
    assert kernel_i.dtype == jnp.bfloat16  # I is exported in bfloat16 (package size budget)
    assert (kernel_i == np.asarray(params_f["unet"]["conv_in"]["kernel"]).astype(jnp.bfloat16)).all()


@pytest.mark.slow
def test_demo_eval_runs_on_the_exported_model(tiny_recipe, tmp_path, capsys):
    """`emu-video demo eval` end to end on the tiny export: every section of the report is filled in."""
    from emu_jax import cli

    workdir, _, _ = tiny_recipe
    out = tmp_path / "report.json"
    assert (
        cli.main(
            [
                "demo",
                "eval",
                "--checkpoint",
                str(workdir / recipe.EXPORT),
                "--num-prompts",
                "2",
                "--batch-size",
                "2",
                "--ceiling-clips",
                "2",
                "--word-use-clips",
                "2",
                "--first-frame-clips",
                "3",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    m = report["model"]
    assert report["num_prompts"] == len(report["per_prompt"]) == 2 and report["ceiling"]
    for row in report["per_prompt"]:  # the parts recorded are the ones the consistency test reads
        assert row["consistent"] == analyse.is_consistent(row["present"], row["area_cv"], row["color_agreement"]), row
    for key in ("direction_accuracy", "given_first_frame_direction_accuracy", "given_first_frame_consistent_fraction"):
        assert 0.0 <= m[key] <= 1.0, key
    assert set(m["word_use"]) == {"color", "shape", "direction", "background"}
    captured = capsys.readouterr()
    assert "given_first_frame_direction_accuracy" in captured.out
    # Progress on stderr by default: each phase, and the sampler's steps per batch and stage.
    for line in (
        "eval: sampling 2 held-out prompts",
        "batch 1 video: step",
        "eval: word use on 2 real clips",
        "eval: the video stage given 3 real first frames",
    ):
        assert line in captured.err, line
    assert cli.main(["demo", "eval", "--first-frame-clips", "-1"]) == 2
    assert "--first-frame-clips -1" in capsys.readouterr().err


def test_bad_stage_and_size_are_named():
    with pytest.raises(ValueError, match="sizes"):
        recipe.run_recipe("/tmp/never", "huge")
    with pytest.raises(ValueError, match="'nope'"):
        recipe.run_recipe("/tmp/never", "tiny", stages=["nope"])


@pytest.mark.slow
def test_demo_eval_interp_scores_the_16fps_video_against_f(tiny_recipe, tmp_path, capsys):
    """`demo eval --interp --interp-steps 1`: I runs with its own step count and the report compares the
    16 fps video with F's frames on the same prompts (direction, all four, consistency, jumps)."""
    from emu_jax import cli

    workdir, _, _ = tiny_recipe
    out = tmp_path / "report.json"
    model = str(workdir / recipe.EXPORT)
    flags = ["--checkpoint", model, "--num-prompts", "2", "--batch-size", "2", "--ceiling-clips", "2"]
    flags += ["--word-use-clips", "0", "--first-frame-clips", "0", "--output", str(out)]
    assert cli.main(["demo", "eval", *flags, "--interp", "--interp-steps", "1"]) == 0
    report = json.loads(out.read_text())
    m = report["model"]
    assert report["interpolation"] and report["interp_num_steps"] == 1 and report["num_steps"] == 2
    for key in ("f_video_direction_accuracy", "f_video_all_correct", "f_video_jumpy_fraction", "jumpy_fraction"):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["jumpy_not_in_f"] in (0, 1, 2)
    assert report["interp_ceiling"]["count"] == 2 and report["ceiling"]["count"] == 2
    assert all({"jump_ratio", "f_jump_ratio", "f_direction"} <= set(row) for row in report["per_prompt"])
    captured = capsys.readouterr()
    assert "interpolation on (1 steps)" in captured.out and "jumpy_not_in_f" in captured.out
    assert "batch 0 interpolation: step 1/1" in captured.err, captured.err[-2000:]
    assert cli.main(["demo", "eval", "--interp-steps", "2"]) == 2
    assert "need --interp" in capsys.readouterr().err
    assert cli.main(["demo", "eval", "--interp", "--interp-steps", "0"]) == 2
    assert "--interp-steps must be >= 1, got 0" in capsys.readouterr().err
