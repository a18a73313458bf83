"""The demo recipe: moving-shapes data -> VAE -> text-to-image -> F (temporal) -> I, then export.

The stages (`STAGES`) are made of sub-stages declared in configs/demo/shapes.py
(`RECIPE`): three T2I phases, F and its direction curriculum, I. Each
sub-stage is an ordinary training run in its own folder under the recipe's
workdir (`vae/`, `t2i_1/`, ..., `t2v_s12/`, `interp/`, `interp_2/`, ...), reading its own
dataset folder (`data/`, `data_s1/`, ...) and started with `train.init_from`
from the sub-stage before it. `--stages` takes stage names (all their
sub-stages) or sub-stage names. Re-running the recipe resumes an interrupted
sub-stage from its newest checkpoint and skips finished ones; `recipe.json`
records each sub-stage's measured wall time (summed over resumes, saved every
half minute while it runs, so a killed call's time counts too) and the exported
model folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pathlib
import threading
import time
from typing import Callable, Sequence

import ml_collections

from emu_jax.config import apply_override, load_config
from emu_jax.errors import UserError
from emu_jax.sampling.outputs import write_json

log = logging.getLogger(__name__)
STAGES = ("data", "vae", "t2i", "t2v", "interp", "export")
TRAIN_STAGES = ("vae", "t2i", "t2v", "interp")
SIZES = ("default", "tiny")
RECORD = "recipe.json"
EXPORT = "demo_model"


def table(size: str) -> ml_collections.ConfigDict:
    """configs/demo/shapes.py's RECIPE at `size`: `order` of sub-stages, `rows[name]` (stage, data,
    init_from) and `datasets[folder]` (build arguments)."""
    if size not in SIZES:
        raise ValueError(f"size {size!r}: allowed sizes {SIZES}")
    return load_config(f"demo/shapes.py:recipe,{size}")


def units(size: str) -> list[tuple[str, str]]:
    """Every unit of work in order as (name, stage): the datasets, the training sub-stages, the export."""
    t = table(size)
    return [
        *((d, "data") for d in t.datasets),
        *((n, t.rows[n].stage) for n in t.order),
        ("export", "export"),
    ]


def select(size: str, names: Sequence[str]) -> list[str]:
    """The units `names` asks for, in recipe order: a stage name means all its sub-stages."""
    all_units = units(size)
    known = set(STAGES) | {n for n, _ in all_units}
    bad = [n for n in names if n not in known]
    if bad:
        subs = [n for n, _ in all_units if n not in STAGES]
        raise ValueError(f"unknown stage(s) {bad}; choose stages {list(STAGES)} or sub-stages {subs}")
    return [n for n, stage in all_units if n in names or stage in names]


def _row(t: ml_collections.ConfigDict, name: str) -> tuple[str, ml_collections.ConfigDict]:
    """(sub-stage name, its row); a stage name stands for its first sub-stage."""
    name = name if name in t.rows else next(n for n in t.order if t.rows[n].stage == name)
    return name, t.rows[name]


def last(size: str, stage: str) -> str:
    """The stage's last sub-stage: the run the recipe exports (F: the curriculum's end)."""
    t = table(size)
    return [n for n in t.order if t.rows[n].stage == stage][-1]


def stage_config(
    name: str,
    size: str,
    workdir: str | pathlib.Path,
    *,
    latent_scale: dict | None = None,
    overrides: Sequence[tuple[str, str]] = (),
) -> ml_collections.ConfigDict:
    """The config of one sub-stage (or a stage: its first), pointed at its dataset and the run it starts from.

    `overrides`: (dotted key, value) pairs applied last, e.g. ("train.steps", "10").
    """
    t = table(size)
    if name not in t.rows and name not in TRAIN_STAGES:
        raise ValueError(f"{name!r} is not a training stage {TRAIN_STAGES} or sub-stage {tuple(t.order)}")
    name, row = _row(t, name)
    workdir = pathlib.Path(workdir).absolute()
    cfg = load_config(f"demo/shapes.py:{name},{size}")
    cfg.data.data_dir = str(workdir / row.data)
    if row.init_from:
        cfg.train.init_from = str(workdir / row.init_from)
    if row.stage != "vae" and latent_scale is not None:
        cfg.model.vae.scaling_factor = float(latent_scale["scaling_factor"])
        cfg.model.vae.shift_factor = float(latent_scale["shift_factor"])
    for key, value in overrides:
        apply_override(cfg, key, str(value))
    return cfg


class Record:
    """`recipe.json`: per-stage status and seconds; every change goes through `update` and reaches disk
    atomically (a kill leaves the old or the new file)."""

    def __init__(self, workdir: pathlib.Path, size: str):
        self.path = workdir / RECORD
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {"size": size, "stages": {}}
        if self.data.get("size") != size:
            raise ValueError(
                f"{workdir} holds a recipe of size {self.data.get('size')!r}, not {size!r}; use another --workdir"
            )
        self._lock = threading.Lock()  # the clock's thread and the recipe both update

    def stage(self, name: str) -> dict:
        return self.data["stages"].setdefault(name, {"seconds": 0.0, "done": False})

    def update(self, name: str, **fields) -> None:
        with self._lock:
            self.stage(name).update(fields)
            write_json(str(self.path), self.data)

    @contextlib.contextmanager
    def clock(self, name: str, every: float = 30.0):
        """Adds the wall time spent inside to `name`'s seconds, saved every `every` s meanwhile, so a
        killed call loses at most that much of its time."""
        base, t0 = self.stage(name)["seconds"], time.perf_counter()
        done = threading.Event()

        def tick() -> None:
            self.update(name, seconds=round(base + time.perf_counter() - t0, 1))

        def beat() -> None:
            while not done.wait(every):
                tick()

        thread = threading.Thread(target=beat, name=f"recipe-clock-{name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            tick()


def build_data(data_dir: str | pathlib.Path, build: ml_collections.ConfigDict) -> str:
    """Renders and writes a moving-shapes dataset with `build`'s arguments (no-op when already prepared)."""
    from emu_jax.data import builders
    from emu_jax.demo.dataset import MovingShapes

    builders.prepare(MovingShapes(data_dir=str(data_dir), **build.to_dict()))
    return str(data_dir)


def _finished(cfg, run_dir: pathlib.Path) -> bool:
    from emu_jax.training.vae_train import is_finished

    return is_finished(cfg, run_dir)


def _with_tokenizer_copy(model: dict, folder: pathlib.Path) -> dict:
    """`model` with each tokenizer folder copied into `folder/tokenizer` and named relative to it, so the
    exported model loads (`emu-video sample`) on a machine without this demo's files."""
    import copy
    import shutil

    from emu_jax.models.tokenizers import BUILTIN

    model = copy.deepcopy(dict(model))
    for i, te in enumerate(model.get("text_encoders", [])):
        if te.get("tokenizer") not in BUILTIN:
            name = "tokenizer" if i == 0 else f"tokenizer_{i}"
            shutil.copytree(te["tokenizer"], folder / name, dirs_exist_ok=True)
            te["tokenizer"] = name
    return model


def export(workdir: pathlib.Path, size: str, latent_scale: dict, out: pathlib.Path | None = None) -> pathlib.Path:
    """F (from the last t2v sub-stage) -> `out`, I (from the last interp sub-stage, bfloat16) -> `out/interp`;
    weights only."""

    from emu_jax import model_folder

    out = pathlib.Path(out or workdir / EXPORT)
    for stage, folder in (("t2v", out), ("interp", out / "interp")):
        if (folder / model_folder.META_FILE).is_file():
            continue
        run = last(size, stage)
        cfg = stage_config(run, size, workdir, latent_scale=latent_scale)
        meta, params = model_folder.load_checkpoint(str(workdir / run))
        if stage == "interp":
            # I is stored in bfloat16 so F + I fit the package's 50 MB budget; Flax promotes the
            # weights back to the fp32 activations, so only the weights' rounding changes.
            params = model_folder.cast_floats(params, "bfloat16")
        model_folder.save_checkpoint(
            str(folder),
            {
                "kind": "model",
                "task": cfg.train.task,
                "model": _with_tokenizer_copy(meta["model"], folder),
                "diffusion": cfg.diffusion.to_dict(),
                "sampling": cfg.sampling.to_dict(),
                "slots": cfg.train.slots.to_dict(),
                "trained_steps": int(meta.get("step", 0)),
                "run": run,
                "recipe": f"emu-video demo train --size {size}",
            },
            params,
        )
    return out


def run_recipe(
    workdir: str | pathlib.Path,
    size: str = "default",
    *,
    stages: Sequence[str] = STAGES,
    overrides: Sequence[tuple[str, str]] = (),
    stop_after: int | None = None,
    make_loader: Callable | None = None,
) -> dict:
    """Runs (or resumes) the recipe's `stages` in order; returns the `recipe.json` record.

    `stages`: stage names (each: all its sub-stages) and sub-stage names, e.g. ("t2v",) or ("t2v_s9", "t2v_s10").
    `overrides` apply to every training sub-stage (e.g. ("train.steps", "3")).
    `stop_after`: each training sub-stage stops (with a checkpoint) after this
    many steps of this call, as a preemption would.
    """
    todo = select(size, stages)
    workdir = pathlib.Path(workdir).absolute()
    configs = {n: stage_config(n, size, workdir, overrides=overrides) for n, s in units(size) if s in TRAIN_STAGES}
    workdir.mkdir(parents=True, exist_ok=True)  # after every config error
    record = Record(workdir, size)
    scale = None
    for name, stage in units(size):
        if name not in todo:
            continue
        record.update(name, stage=stage)
        with record.clock(name):
            if stage == "data":
                build_data(workdir / name, table(size).datasets[name])
            elif stage == "export":
                scale = scale or _scale(workdir, size, overrides, make_loader)
                record.update(name, folder=str(export(workdir, size, scale)))
            else:
                run_dir = workdir / name
                if not _finished(configs[name], run_dir):
                    _check_start(name, configs)
                    if stage != "vae":
                        scale = scale or _scale(workdir, size, overrides, make_loader)
                    cfg = stage_config(name, size, workdir, latent_scale=scale, overrides=overrides)
                    record.update(name, last_metrics=_train(name, cfg, run_dir, make_loader, stop_after))
                record.update(
                    name,
                    steps=configs[name].train.steps,
                    init_from=configs[name].train.init_from or None,
                    data=configs[name].data.data_dir,
                )
        done = stage in ("data", "export") or _finished(configs[name], workdir / name)
        record.update(name, done=done)
        if not done:
            log.warning("%s stopped before its last step; re-run to resume", name)
            break
        log.info("%s done (%.1f s in total)", name, record.stage(name)["seconds"])
    return record.data


def _check_start(name: str, configs: dict) -> None:
    """UserError unless the run `name` starts from (a sub-stage of the recipe) has finished."""
    start = pathlib.Path(configs[name].train.init_from) if configs[name].train.init_from else None
    if start is not None and start.name in configs and not _finished(configs[start.name], start):
        raise UserError(f"{name} starts from {start.name}, which has not finished: run --stages {start.name} first")


def _train(name: str, cfg, run_dir: pathlib.Path, make_loader, stop_after) -> dict:
    """Trains (or resumes) one sub-stage on its dataset (rendered first unless the data stage did)."""
    build_data(cfg.data.data_dir, cfg.dataset)
    log.info("%s: training %d steps in %s", name, cfg.train.steps, run_dir)
    if cfg.train.task == "vae":
        from emu_jax.training.vae_train import train_vae as train_fn
    else:
        from emu_jax.training.loop import train as train_fn
    return train_fn(cfg, run_dir, make_loader=make_loader, stop_after=stop_after)


def _scale(workdir: pathlib.Path, size: str, overrides, make_loader) -> dict:
    """The trained VAE's latent mean / std (measured once, cached in vae/latent_scale.json)."""
    from emu_jax.training.vae_train import latent_scale

    cfg = stage_config("vae", size, workdir, overrides=overrides)
    return latent_scale(cfg, workdir / "vae", make_loader=make_loader)
