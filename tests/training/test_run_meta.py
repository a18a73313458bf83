"""A run folder's identity (emu_jax.json): what refuses a resume, what is only logged (no JAX work)."""

import json

import pytest

from emu_jax.errors import UserError
from emu_jax.training import run_meta


def _meta(**unet):
    return {
        "format": "emu_jax",
        "task": "t2v",
        "model": {"unet": {"model_channels": 32, **unet}},
        "diffusion": {"prediction": "v"},
        "sampling": {"num_steps": 10},
        "slots": {"factor": 4},
    }


def test_new_run_and_same_model(tmp_path):
    assert run_meta.check_resume(tmp_path / "new", _meta()) is None
    run_meta.write(tmp_path, _meta())
    assert run_meta.check_resume(tmp_path, _meta()) == _meta()
    assert [p.name for p in tmp_path.iterdir()] == ["emu_jax.json"]  # no temp file left behind


@pytest.mark.parametrize(
    "change,named",
    [
        (lambda m: m["model"]["unet"].update(model_channels=64), "model.unet.model_channels: 32 -> 64"),
        (lambda m: m.update(task="interp"), "task: 't2v' -> 'interp'"),
        (lambda m: m["diffusion"].update(prediction="eps"), "diffusion.prediction: 'v' -> 'eps'"),
        (lambda m: m["slots"].update(factor=2), "slots.factor: 4 -> 2"),
    ],
)
def test_other_identity_is_refused(tmp_path, change, named):
    run_meta.write(tmp_path, _meta())
    new = _meta()
    change(new)
    with pytest.raises(UserError, match="is a run of another model") as e:
        run_meta.check_resume(tmp_path, new)
    assert named in str(e.value)


def test_sampling_change_and_newer_fields_are_not_identity(tmp_path, caplog):
    run_meta.write(tmp_path, _meta())
    new = _meta(remat="full")  # a field the code gained after the run was written
    new["sampling"]["num_steps"] = 50
    assert run_meta.check_resume(tmp_path, new) == _meta()
    assert "model.unet.remat='full'" in caplog.text


def test_workdir_file_and_unreadable_meta(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        run_meta.check_resume(tmp_path / "f", _meta())
    (tmp_path / "emu_jax.json").write_text("{not json")
    with pytest.raises(UserError, match="emu_jax.json is unreadable"):
        run_meta.check_resume(tmp_path, _meta())


def test_log_changes_lists_each_setting(caplog):
    old = {"train": {"optimizer": {"lr": 1e-3}, "steps": 10}, "seed": 0}
    new = {"train": {"optimizer": {"lr": 2e-3}, "steps": 10}, "seed": 1}
    assert run_meta.log_changes(old, new) == ["seed: 0 -> 1", "train.optimizer.lr: 0.001 -> 0.002"]
    assert "2 changed setting(s)" in caplog.text
    assert run_meta.log_changes(old, json.loads(json.dumps(old))) == []


def test_unwritable_workdir_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(run_meta.os, "access", lambda path, mode: str(path) != str(tmp_path))
    with pytest.raises(UserError, match=f"--workdir .*run: {tmp_path} is not a writable folder"):
        run_meta.check_resume(tmp_path / "a" / "run", _meta())
