"""JAX's persistent compilation cache is on for the commands that train or sample (training, the recipe,
sampling), in the user's cache folder unless one is already set."""

import jax
import pytest

from emu_jax import cli, compile_cache
from emu_test_utils import REPO

TINY_T2I = f"{REPO}/configs/demo/shapes.py:t2i,tiny"


@pytest.fixture
def no_cache_dir(tmp_path, monkeypatch):
    """No cache folder set (conftest sets one for the suite), XDG_CACHE_HOME in tmp_path."""
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    yield tmp_path / "emu_jax" / "jax"
    jax.config.update("jax_compilation_cache_dir", before)


def test_enable_keeps_a_folder_already_set(tmp_path):
    assert compile_cache.enable(str(tmp_path)) == jax.config.jax_compilation_cache_dir != str(tmp_path)


def test_enable_defaults_to_the_user_cache_folder(no_cache_dir):
    assert compile_cache.enable() == str(no_cache_dir) == jax.config.jax_compilation_cache_dir
    assert no_cache_dir.is_dir()


@pytest.mark.parametrize(
    "argv, entry",
    [
        (
            ["train", "--config", f"{REPO}/configs/demo/shapes.py:t2i,tiny", "--workdir", "W"],
            "emu_jax.training.loop.train",
        ),
        (["demo", "train", "--workdir", "W", "--size", "tiny"], "emu_jax.demo.recipe.run_recipe"),
    ],
)
def test_training_commands_turn_the_cache_on_before_training(no_cache_dir, monkeypatch, tmp_path, argv, entry):
    seen = []
    monkeypatch.setattr(entry, lambda *a, **k: seen.append(jax.config.jax_compilation_cache_dir) or {})
    argv = [str(tmp_path / "run") if a == "W" else a for a in argv]
    assert cli.main(argv) == 0
    assert seen == [str(no_cache_dir)]


def test_ablate_turns_the_cache_on_before_its_arms_train(no_cache_dir, monkeypatch, tmp_path, tiny_shapes_dir):
    study = tmp_path / "study.py"
    study.write_text(
        f'config = "{REPO}/configs/tiny.py"\nconfig_args = "t2v"\n'
        f'overrides = {{"data.data_dir": {str(tiny_shapes_dir)!r}, "train.batch_size": 8}}\n'
        'arms = {"baseline": {}}\neval = {"num_items": 8, "draws": 2, "seed": 3, "resamples": 500}\n'
    )
    seen = []
    monkeypatch.setattr(
        "emu_jax.ablate.runner.run_arm", lambda *a, **k: seen.append(jax.config.jax_compilation_cache_dir)
    )
    argv = ["ablate", "--study", str(study), "--out", str(tmp_path / "out"), "--arm", "baseline"]
    assert cli.main(argv) == 0
    assert seen == [str(no_cache_dir)]
