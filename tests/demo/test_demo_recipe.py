"""The demo recipe end to end at the tiny size: every sub-stage (T2I phases, F's direction curriculum, I) trains
2 steps on its own dataset, stops and resumes mid-curriculum, and exports a loadable model."""

import json
import os
import pathlib
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax import model_folder
from emu_jax.data import pipeline
from emu_jax.demo import analyse, evaluate, recipe

# The training runs in order, each started from the one before (docs/demo.md, "The recipe").
CHAIN = (
    "vae",
    "t2i_1",
    "t2i_2",
    "t2i_3",
    "t2v_0",
    "t2v_s1",
    "t2v_s1b",
    "t2v_s3",
    "t2v_s6",
    "t2v_s7",
    "t2v_s8",
    "t2v_s9",
    "t2v_s10",
    "t2v_s11",
    "t2v_s12",
    "interp",
    "interp_2",
    "interp_3",
    "interp_4",
)
# I starts from t2v_s10, the F the shipped I was trained from (t2v_s11's and t2v_s12's cycles came after it).
INIT_FROM = {name: prev for prev, name in zip(CHAIN, CHAIN[1:])} | {"interp": "t2v_s10"}


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo_recipe")
    # First call stops every sub-stage after 1 step: the recipe halts at the unfinished VAE.
    first = recipe.run_recipe(workdir, "tiny", stop_after=1)
    # Up to the curriculum's first sub-stage, by stage and sub-stage names.
    recipe.run_recipe(workdir, "tiny", stages=["vae", "t2i", "t2v_0", "t2v_s1"])
    # A stop mid-curriculum: t2v_s1b stops after 1 of its 2 steps, nothing after it starts.
    stopped = recipe.run_recipe(workdir, "tiny", stop_after=1)
    second = recipe.run_recipe(workdir, "tiny")  # resumes t2v_s1b, then runs the rest
    return workdir, first, stopped, second


@pytest.mark.slow  # the tiny recipe fixture trains every sub-stage
def test_recipe_stops_then_resumes_every_stage(tiny_recipe):
    workdir, first, _, second = tiny_recipe
    assert first["stages"]["vae"]["done"] is False and "t2i_1" not in first["stages"]
    assert all(e["done"] for e in second["stages"].values()), second
    vae_steps = [json.loads(line)["step"] for line in (workdir / "vae" / "metrics.jsonl").read_text().splitlines()]
    assert vae_steps == [1, 2]  # step 2 continued from the saved step 1, not from scratch
    for name in CHAIN:
        assert second["stages"][name]["seconds"] > 0, name
    # A third run has nothing left to do and changes no checkpoint.
    before = sorted(p.name for p in (workdir / "t2v_s11" / "checkpoints").iterdir())
    third = recipe.run_recipe(workdir, "tiny")
    assert sorted(p.name for p in (workdir / "t2v_s11" / "checkpoints").iterdir()) == before
    assert third["stages"]["t2v_s11"]["seconds"] < second["stages"]["t2v_s11"]["seconds"] + 5


@pytest.mark.slow
def test_every_sub_stage_runs_in_order_from_the_one_before(tiny_recipe):
    workdir, _, _, second = tiny_recipe
    assert list(second["stages"]) == [n for n, _ in recipe.units("tiny")]
    assert [n for n, e in second["stages"].items() if e["stage"] not in ("data", "export")] == list(CHAIN)
    assert second["stages"]["vae"]["init_from"] is None
    for name, prev in INIT_FROM.items():
        assert second["stages"][name]["init_from"] == str(workdir / prev), name
        assert second["stages"][name]["steps"] == 2
    # What was frozen stays bit-identical down the chain: the VAE from the vae run everywhere, the spatial
    # layers T2I trained (changed by every T2I phase) in every F sub-stage and in I.
    params = {n: model_folder.load_checkpoint(str(workdir / n))[1] for n in ("vae", *CHAIN[1:])}
    kernel = {n: np.asarray(p["unet"]["conv_in"]["kernel"]) for n, p in params.items() if n != "vae"}
    vae_kernel = np.asarray(params["vae"]["vae"]["encoder"]["conv_in"]["kernel"])
    for name in CHAIN[1:]:
        assert (np.asarray(params[name]["vae"]["encoder"]["conv_in"]["kernel"]) == vae_kernel).all(), name
    for a, b in (("t2i_1", "t2i_2"), ("t2i_2", "t2i_3")):
        assert not (kernel[a] == kernel[b]).all(), (a, b)
    for name in CHAIN[4:]:
        assert (kernel[name] == kernel["t2i_3"]).all(), name


@pytest.mark.slow
def test_a_stop_mid_curriculum_resumes_at_that_sub_stage(tiny_recipe):
    workdir, _, stopped, second = tiny_recipe
    assert [n for n, e in stopped["stages"].items() if not e["done"]] == ["t2v_s1b"]
    assert "t2v_s3" not in stopped["stages"] and "export" not in stopped["stages"]

    def steps(name):
        return [json.loads(x)["step"] for x in (workdir / name / "metrics.jsonl").read_text().splitlines()]

    # A 2-step run logs its last step; the stopped one also the step it stopped at. A re-run would log again.
    assert steps("t2v_s1") == [2]  # finished before the stop, not re-run
    assert steps("t2v_s1b") == [1, 2]  # step 2 continued from the stop's step 1
    assert steps("t2v_s3") == [2]
    assert second["stages"]["t2v_s1b"]["seconds"] > stopped["stages"]["t2v_s1b"]["seconds"]


@pytest.mark.slow
def test_each_sub_stage_reads_a_dataset_built_as_declared(tiny_recipe):
    workdir, _, _, second = tiny_recipe
    declared = recipe.table("tiny").datasets
    data = {"t2i_2": "data", "t2v_0": "data", "t2v_s1": "data_s1", "t2v_s1b": "data_s1", "t2v_s3": "data_s3"}
    data |= {"t2v_s6": "data_s6", "t2v_s7": "data_s7", "t2v_s9": "data_s8", "t2v_s10": "data_s8"}
    data |= {name: "data_s8" for name in ("t2v_s11", "t2v_s12", "interp", "interp_2", "interp_3", "interp_4")}
    for name, folder in data.items():
        assert second["stages"][name]["data"] == str(workdir / folder), name
    look = {"data_s1": ("red", "circle", "black"), "data_s3": ("red", "circle", "black")}
    look |= {"data_s6": (None, "circle", "black"), "data_s7": (None, None, "black"), "data_s8": (None, None, None)}
    for folder, (color, shape, background) in look.items():
        rows = [r for split in ("train", "test") for r in _rows(workdir / folder, split)]
        assert len(rows) == declared[folder].num_train + declared[folder].num_test == 12, folder
        for key, want in (("color", color), ("shape", shape), ("background", background)):
            if want is not None:
                assert {r[key] for r in rows} == {want}, (folder, key)
        assert {round(float(r["speed"]), 4) for r in rows} == {0.4} and {round(float(r["size"]), 4) for r in rows} == {
            0.3
        }, folder
        centre = all(float(r[k]) == 0.5 for r in rows for k in ("start_x", "start_y"))
        assert centre == (folder == "data_s1"), folder  # s1 starts in the centre, the rest anywhere
    assert len(_rows(workdir / "data", "train")) == declared["data"].num_train == 16
    # The curriculum's last data varies every attribute of the look.
    rows = _rows(workdir / "data_s8", "train")
    assert len({r["color"] for r in rows}) > 1 and len({r["background"] for r in rows}) > 1


def _rows(data_dir, split):
    source = pipeline.open_source("moving_shapes", str(data_dir), split)
    # Attributes are text; the H.264 video stays bytes.
    return [
        {k: (v.decode() if isinstance(v, bytes) else v) for k, v in source[i].items() if k != "video"}
        for i in range(len(source))
    ]


@pytest.mark.slow
def test_exported_model_folders_load_with_their_roles(tiny_recipe):
    workdir, _, _, second = tiny_recipe
    folder = workdir / recipe.EXPORT
    assert second["stages"]["export"]["folder"] == str(folder)
    meta_f, params_f = model_folder.load_checkpoint(str(folder))
    meta_i, params_i = model_folder.load_checkpoint(str(folder / "interp"))
    assert meta_f["task"] == "t2v" and meta_i["task"] == "interp"
    assert meta_f["run"] == "t2v_s12" and meta_i["run"] == "interp_4"
    assert meta_i["model"]["unet"]["cond_level_embed"] and not meta_f["model"]["unet"]["cond_level_embed"]
    assert meta_i["slots"] == {"num_given": 4, "factor": 2, "pad": 1}
    scale = json.loads((workdir / "vae" / "latent_scale.json").read_text())
    assert meta_f["model"]["vae"]["scaling_factor"] == pytest.approx(scale["scaling_factor"])
    # F is the curriculum's last run and I the last interp run, weight for weight (I rounded to bfloat16).
    _, last_f = model_folder.load_checkpoint(str(workdir / "t2v_s12"))
    _, before_f = model_folder.load_checkpoint(str(workdir / "t2v_s11"))
    _, run_i = model_folder.load_checkpoint(str(workdir / "interp_4"))
    same = jax.tree.map(lambda a, b: bool((np.asarray(a) == np.asarray(b)).all()), params_f, last_f)
    assert all(jax.tree.leaves(same))
    assert not all(jax.tree.leaves(jax.tree.map(lambda a, b: bool((a == b).all()), params_f, before_f)))
    kernel_i = np.asarray(params_i["unet"]["conv_in"]["kernel"])
    assert kernel_i.dtype == jnp.bfloat16  # I is exported in bfloat16 (package size budget)
    assert (kernel_i == np.asarray(run_i["unet"]["conv_in"]["kernel"]).astype(jnp.bfloat16)).all()
    # F carries the VAE trained in the first stage and I carries F's spatial layers.
    _, vae_run = model_folder.load_checkpoint(str(workdir / "vae"))
    k = "conv_in"
    assert (params_f["vae"]["encoder"][k]["kernel"] == vae_run["vae"]["encoder"][k]["kernel"]).all()
    assert (kernel_i == np.asarray(params_f["unet"]["conv_in"]["kernel"]).astype(jnp.bfloat16)).all()


@pytest.mark.slow
def test_demo_eval_runs_on_the_exported_model(tiny_recipe, tmp_path, capsys):
    """`emu-video demo eval` end to end on the tiny export: every section of the report is filled in."""
    from emu_jax import cli

    workdir, _, _, _ = tiny_recipe
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


def test_a_killed_calls_time_stays_in_the_record(tmp_path):
    """kill -9 mid-stage keeps the time spent so far (saved by the clock), and a resumed call adds to it."""
    code = (
        "import pathlib, time\n"
        "from emu_jax.demo import recipe\n"
        f"r = recipe.Record(pathlib.Path({str(tmp_path)!r}), 'tiny')\n"
        "with r.clock('t2v_0', every=0.05):\n"
        "    print('in', flush=True)\n"
        "    time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, env={**os.environ, "JAX_PLATFORMS": "cpu"}
    )
    try:
        assert proc.stdout.readline().strip() == b"in"
        time.sleep(1.0)
    finally:
        proc.kill()
        proc.wait()
    killed = json.loads((tmp_path / recipe.RECORD).read_text())["stages"]["t2v_0"]["seconds"]
    assert 0.8 <= killed < 30, killed
    record = recipe.Record(tmp_path, "tiny")
    with record.clock("t2v_0", every=60.0):
        time.sleep(0.3)
    resumed = json.loads((tmp_path / recipe.RECORD).read_text())["stages"]["t2v_0"]["seconds"]
    assert killed + 0.2 <= resumed < killed + 30, (killed, resumed)


def test_bad_stage_and_size_are_named():
    with pytest.raises(ValueError, match="sizes"):
        recipe.run_recipe("/tmp/never", "huge")
    with pytest.raises(ValueError, match="'nope'"):
        recipe.run_recipe("/tmp/never", "tiny", stages=["nope"])


@pytest.mark.slow
def test_demo_eval_interp_scores_the_16fps_video_against_f(tiny_recipe, tmp_path, capsys, monkeypatch):
    """`demo eval --interp --interp-steps 1`: I runs with its own step count and the report compares the
    16 fps video with F's frames on the same prompts (direction, all four, consistency, jumps); every real
    clip it reads (I given real frames, both ceilings) starts as `--clips-start` says."""
    from emu_jax import cli
    from emu_jax.demo import evaluate

    starts, real_clips = [], evaluate.real_clips
    monkeypatch.setattr(evaluate, "real_clips", lambda *a, **k: starts.append(k.get("start")) or real_clips(*a, **k))
    workdir = tiny_recipe[0]
    out = tmp_path / "report.json"
    model = str(workdir / recipe.EXPORT)
    flags = ["--checkpoint", model, "--num-prompts", "2", "--batch-size", "2", "--ceiling-clips", "2"]
    flags += ["--word-use-clips", "0", "--first-frame-clips", "0", "--clips-start", "free", "--output", str(out)]
    assert cli.main(["demo", "eval", *flags, "--interp", "--interp-steps", "1", "--interp-real-clips", "2"]) == 0
    assert starts == ["free"] * 3, starts
    report = json.loads(out.read_text())
    m = report["model"]
    assert report["interpolation"] and report["interp_num_steps"] == 1 and report["num_steps"] == 2
    i_meta = model_folder.load_meta(model + "/interp")
    assert report["interp_checkpoint"] == model + "/interp" and report["interp_run"] == i_meta["run"]
    given_real = ("interp_given_real_" + k for k in ("direction_accuracy", "consistent_fraction", "jumpy_fraction"))
    for key in (
        "f_video_direction_accuracy",
        "f_video_all_correct",
        "f_video_jumpy_fraction",
        "jumpy_fraction",
        *given_real,
    ):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["jumpy_not_in_f"] in (0, 1, 2)
    assert report["interp_ceiling"]["count"] == 2 and report["ceiling"]["count"] == 2
    assert report["interp_ceiling"]["through_vae"]["count"] == 2
    assert all({"jump_ratio", "f_jump_ratio", "f_direction"} <= set(row) for row in report["per_prompt"])
    captured = capsys.readouterr()
    assert f"interpolation on ({i_meta['run']}, 1 steps)" in captured.out and "jumpy_not_in_f" in captured.out
    assert "interp_given_real_jumpy_fraction" in captured.out and "given 2 real clips' frames" in captured.err
    assert "batch 0 interpolation: step 1/1" in captured.err, captured.err[-2000:]
    assert cli.main(["demo", "eval", "--interp-steps", "2"]) == 2
    assert "need --interp" in capsys.readouterr().err
    assert cli.main(["demo", "eval", "--interp", "--interp-steps", "0"]) == 2
    assert "--interp-steps must be >= 1, got 0" in capsys.readouterr().err
    assert cli.main(["demo", "eval", "--interp", "--interp-real-clips", "-1"]) == 2
    assert "--interp-real-clips -1" in capsys.readouterr().err


def test_default_recipe_declares_the_shipped_models_runs():
    """Steps, LR / warmup, data and init_from of every default sub-stage, as docs/demo.md lists them."""
    want = {
        "vae": (2500, 1e-3, 50, "data", None),
        "t2i_1": (1500, 1e-3, 100, "data", "vae"),
        "t2i_2": (500, 1e-3, 100, "data", "t2i_1"),
        "t2i_3": (1000, 5e-4, 20, "data", "t2i_2"),
        "t2v_0": (400, 1e-3, 20, "data", "t2i_3"),
        "t2v_s1": (400, 1e-3, 20, "data_s1", "t2v_0"),
        "t2v_s1b": (200, 1e-3, 20, "data_s1", "t2v_s1"),
        "t2v_s3": (400, 1e-3, 20, "data_s3", "t2v_s1b"),
        "t2v_s6": (400, 1e-3, 20, "data_s6", "t2v_s3"),
        "t2v_s7": (300, 1e-3, 20, "data_s7", "t2v_s6"),
        "t2v_s8": (300, 1e-3, 20, "data_s8", "t2v_s7"),
        "t2v_s9": (800, 1e-3, 20, "data_s8", "t2v_s8"),
        "t2v_s10": (1100, 1e-3, 20, "data_s8", "t2v_s9"),
        "t2v_s11": (300, 1e-3, 20, "data_s8", "t2v_s10"),
        "t2v_s12": (800, 5e-4, 20, "data_s8", "t2v_s11"),
        "interp": (300, 1e-3, 10, "data_s8", "t2v_s10"),
        "interp_2": (800, 1e-3, 10, "data_s8", "interp"),
        "interp_3": (800, 5e-4, 10, "data_s8", "interp_2"),
        "interp_4": (800, 5e-4, 10, "data_s8", "interp_3"),
    }
    assert list(recipe.table("default").order) == list(want) == list(CHAIN)
    for name, (steps, lr, warmup, data, init_from) in want.items():
        cfg = recipe.stage_config(name, "default", "/w")
        got = (cfg.train.steps, cfg.train.optimizer.lr, cfg.train.optimizer.warmup_steps, cfg.data.data_dir)
        assert got == (steps, lr, warmup, f"/w/{data}"), name
        assert cfg.train.init_from == (f"/w/{init_from}" if init_from else ""), name
        assert cfg.train.optimizer.decay == ("constant" if name == "vae" else "cosine"), name
        assert {k: cfg.dataset[k] for k in ("resolution", "num_frames", "fps")} == {
            "resolution": 32,
            "num_frames": 40,
            "fps": 16.0,
        }
    # F samples with 25 steps, I (heavily conditioned) with 10; the bundled I ships that default.
    assert recipe.stage_config("t2v_s10", "default", "/w").sampling.num_steps == 25
    assert recipe.stage_config("interp", "default", "/w").sampling.num_steps == 10
    bundled = json.loads((pathlib.Path(evaluate.default_checkpoint()) / "interp" / "emu_jax.json").read_text())
    assert bundled["sampling"]["num_steps"] == 10
    assert (bundled["trained_steps"], bundled["run"]) == (800, "interp_4")
    # Only F's last run and I's three later runs keep EMA weights (what load_checkpoint exports); the rest
    # train without.
    ema = {name: recipe.stage_config(name, "default", "/w").train.ema_decay for name in CHAIN}
    kept = {"t2v_s12": 0.998, "interp_2": 0.995, "interp_3": 0.998, "interp_4": 0.998}
    assert ema == {name: 0.0 for name in CHAIN} | kept
    bundled_meta_f = json.loads((pathlib.Path(evaluate.default_checkpoint()) / "emu_jax.json").read_text())
    assert (bundled_meta_f["trained_steps"], bundled_meta_f["run"]) == (800, "t2v_s12")
    # F's video text guidance w_p 3, in the recipe and in the bundled F.
    f_sampling = recipe.stage_config("t2v_s12", "default", "/w").sampling
    bundled_f = bundled_meta_f["sampling"]
    scales = [f_sampling.guidance_keyframe, f_sampling.guidance_image, f_sampling.guidance_text]
    assert scales == [bundled_f[k] for k in ("guidance_keyframe", "guidance_image", "guidance_text")] == [4, 2, 3]
    # I samples unguided (w_i = w_p = 1, one forward per step), in the recipe and in the bundled I.
    i_sampling = recipe.stage_config("interp", "default", "/w").sampling
    unit = (i_sampling.guidance_image, i_sampling.guidance_text)
    assert unit == (1.0, 1.0) == (bundled["sampling"]["guidance_image"], bundled["sampling"]["guidance_text"])
    first = recipe.stage_config("t2i_2", "default", "/w").data
    assert (first.num_frames, first.fps, first.keep_frames) == (8, 4.0, 1)  # first frames of F's clips
    later = recipe.stage_config("t2i_3", "default", "/w").data
    assert (later.num_frames, later.keep_frames) == (1, 0)
    d = recipe.table("default").datasets
    assert (d.data.num_train, d.data.num_test, d.data.get("start", "path")) == (4096, 256, "path")
    for folder, look, start, num_train, num_test in (
        ("data_s1", ("red", "circle", "black"), "centre", 512, 64),
        ("data_s3", ("red", "circle", "black"), "free", 512, 64),
        ("data_s6", ("any", "circle", "black"), "free", 1024, 64),
        ("data_s7", ("any", "any", "black"), "free", 2048, 64),
        ("data_s8", None, "free", 4096, 256),
    ):
        b = d[folder]
        assert (tuple(b.look) if "look" in b else None, b.start, b.num_train, b.num_test) == (
            look,
            start,
            num_train,
            num_test,
        ), folder
        assert (tuple(b.speed_range), tuple(b.size_range), b.seed) == ((0.4, 0.4), (0.3, 0.3), 0), folder


def test_stages_take_stage_and_sub_stage_names(tmp_path, capsys):
    from emu_jax import cli

    assert recipe.select("default", ["t2v"]) == list(CHAIN[4:15])
    assert recipe.select("default", ["t2v_s10", "data", "t2v_s9"]) == [
        "data",
        "data_s1",
        "data_s3",
        "data_s6",
        "data_s7",
        "data_s8",
        "t2v_s9",
        "t2v_s10",
    ]
    assert recipe.last("default", "t2v") == "t2v_s12" and recipe.last("tiny", "interp") == "interp_4"
    workdir = tmp_path / "w"
    assert cli.main(["demo", "train", "--workdir", str(workdir), "--size", "tiny", "--stages", "t2v,s9"]) == 2
    assert "'s9'" in capsys.readouterr().err and not workdir.exists()
    # A sub-stage whose starting run has not finished refuses before building anything.
    with pytest.raises(ValueError, match="t2v_s9 starts from t2v_s8, which has not finished"):
        recipe.run_recipe(workdir, "tiny", stages=["t2v_s9"])
    assert not (workdir / "data_s8").exists() and not (workdir / "t2v_s9").exists()
