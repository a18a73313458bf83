"""A study file, loaded and checked before anything trains.

A study is a Python file with module-level names:
  config       base config file (`configs/tiny.py`, a name under configs/, or a path)
  config_args  its `get_config` argument (`"t2v"`), optional
  overrides    {dotted key: value} applied to every arm (e.g. data_dir, steps), optional
  arms         {arm name: {dotted key: value}}; the reserved key `checkpoint` skips training and
               evaluates that checkpoint instead (`train.init_from` starts training from one)
  baseline     the arm every other arm is compared with (default: the first arm)
  eval         {"metrics": [names], "split", "num_items", "seed", "draws", "batch_size", "resamples"}
Every arm's config is built here, so a bad key or value is one error line before any training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import pathlib
import sys
from typing import Any

import ml_collections

from emu_jax.config import apply_override, load_config
from emu_jax.errors import UserError

EVAL_DEFAULTS = {
    "metrics": ["denoise_loss"],
    "split": "test",  # held-out clips: the metric never scores what the arms trained on
    "num_items": 16,
    "seed": 0,
    "draws": 4,  # (timestep, noise) draws per item for denoise_loss
    "resamples": 2000,
    "prompts": None,  # list or file of prompts, for sample-based metrics (item i = prompt i)
    "sampling": {},  # Settings overrides for sample-based metrics (method, num_steps, guidance_*)
    "batch_size": 4,  # sampling batch
    "clip": None,  # transformers CLIPModel folder, for clip_score
    "real": None,  # folder of real videos, the reference set of fid / fvd
    "fid_weights": None,  # pytorch-fid Inception .pth, for fid
    "fvd_weights": None,  # "packaged" or a pytorch-i3d state dict, for fvd
}
RESERVED = ("checkpoint",)
KNOWN = {"config", "config_args", "overrides", "arms", "baseline", "eval"}


@dataclasses.dataclass
class Arm:
    name: str
    overrides: dict[str, Any]
    cfg: ml_collections.ConfigDict
    checkpoint: str | None

    def fingerprint(self, eval_settings: dict) -> str:
        """What the arm's result depends on: a finished eval from another study setup is not reused."""
        blob = json.dumps([self.cfg.to_dict(), self.checkpoint, eval_settings], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclasses.dataclass
class Study:
    path: pathlib.Path
    arms: dict[str, Arm]
    baseline: str
    eval: dict


def _load_module(path: pathlib.Path):
    if not path.is_file():
        raise UserError(f"study file {path} not found")
    spec = importlib.util.spec_from_file_location(f"_emu_study_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's file: any error in it is a one-line study error
        raise UserError(f"study file {path}: {type(e).__name__}: {e}") from None
    return module


def _text(value: Any) -> str:
    """Override values as `apply_override` parses them (the same text a `--config.a.b=` flag would give)."""
    if isinstance(value, (list, tuple)):
        return "(" + ",".join(_text(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def build_config(base: str, overrides: dict[str, Any]) -> ml_collections.ConfigDict:
    cfg = load_config(base)
    for key, value in overrides.items():
        apply_override(cfg, key, _text(value))
    return cfg


def _check_trainable(path: pathlib.Path, name: str, cfg: ml_collections.ConfigDict) -> None:
    """What `train` would refuse (model, schedule, loss, optimiser), checked without compiling: a bad arm
    fails the study before the first arm spends its training time."""
    from emu_jax.training.loop import build
    from emu_jax.training.optim import hyperparams

    try:
        build(cfg)
        hyperparams(cfg.train.optimizer, cfg.train.steps, cfg.train.ema_decay, cfg.seed)
    except (ValueError, TypeError, KeyError, UserError) as e:
        raise UserError(f"study file {path}, arm {name!r}: {e}") from None


def load(path: str | pathlib.Path) -> Study:
    path = pathlib.Path(path).absolute()
    module = _load_module(path)
    names = {k for k in vars(module) if not k.startswith("_") and k.islower() and not callable(getattr(module, k))}
    unknown = sorted(names - KNOWN - {k for k, v in vars(module).items() if isinstance(v, type(sys))})
    if unknown:
        raise UserError(f"study file {path}: unknown setting(s) {unknown}; known: {sorted(KNOWN)}")
    if not isinstance(getattr(module, "config", None), str):
        raise UserError(f"study file {path}: needs `config = 'configs/NAME.py'` (the base config)")
    arms = getattr(module, "arms", None)
    if not isinstance(arms, dict) or not arms or not all(isinstance(v, dict) for v in arms.values()):
        raise UserError(f"study file {path}: needs `arms = {{name: {{override: value}}, ...}}` with at least one arm")
    base = module.config + (f":{module.config_args}" if getattr(module, "config_args", None) else "")
    shared = dict(getattr(module, "overrides", {}) or {})
    settings = dict(EVAL_DEFAULTS)
    extra = set(getattr(module, "eval", {}) or {}) - set(EVAL_DEFAULTS)
    if extra:
        raise UserError(f"study file {path}: unknown eval setting(s) {sorted(extra)}; known: {sorted(EVAL_DEFAULTS)}")
    settings.update(getattr(module, "eval", {}) or {})
    if isinstance(settings["prompts"], str):
        settings["prompts"] = [p for p in pathlib.Path(settings["prompts"]).read_text().splitlines() if p.strip()]
    if int(settings["num_items"]) < 2:
        raise UserError(f"study file {path}: eval num_items must be >= 2 to bootstrap, got {settings['num_items']}")
    built = {}
    for name, arm_overrides in arms.items():
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise UserError(f"study file {path}: arm name {name!r} must be letters, digits, - or _")
        plain = {k: v for k, v in arm_overrides.items() if k not in RESERVED}
        try:
            cfg = build_config(base, {**shared, **plain})
        except (ValueError, TypeError, OSError, SyntaxError, NameError) as e:
            raise UserError(f"study file {path}, arm {name!r}: {e}") from None
        ckpt = arm_overrides.get("checkpoint")
        if not ckpt:
            _check_trainable(path, name, cfg)
        built[name] = Arm(name, plain, cfg, str(ckpt) if ckpt else None)
    baseline = getattr(module, "baseline", None) or next(iter(arms))
    if baseline not in built:
        raise UserError(f"study file {path}: baseline {baseline!r} is not an arm; arms: {list(built)}")
    from emu_jax.ablate import metrics  # names checked here too: a typo fails before training

    for m in settings["metrics"]:
        metrics.resolve(m)
    for m in settings["metrics"]:
        missing = [k for k in metrics.NEEDS.get(m, ()) if not settings[k]]
        if missing:
            raise UserError(f"study file {path}: metric {m} needs eval setting(s) {missing}")
    if settings["prompts"] is not None and len(settings["prompts"]) < int(settings["num_items"]):
        raise UserError(f"study file {path}: {len(settings['prompts'])} prompts for num_items={settings['num_items']}")
    if settings["prompts"] is not None:
        settings["prompts"] = list(settings["prompts"])[: int(settings["num_items"])]
    return Study(path, built, baseline, settings)
