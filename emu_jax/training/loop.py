"""The training run: config checks, mesh, model and state, input, compiled step, loop.

Sections follow big_vision's train.py. Everything that can be wrong with a
config is checked before anything is compiled; the loop never syncs with the
host inside a step (metrics are fetched once per logging window); checkpoints
hold state + data position + config, and a restart resumes from the newest
complete one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import pathlib
from typing import Any, Callable, Iterator

import jax
import ml_collections
from flax.core import meta
from jax.sharding import NamedSharding, PartitionSpec

from emu_jax import conditioning, sharding
from emu_jax.diffusion.schedules import make_schedule
from emu_jax.errors import UserError, as_user_error
from emu_jax.models.emu import EmuConfig, EmuModel
from emu_jax.training import checkpoint as ckpt_lib
from emu_jax.training import metrics as metrics_lib
from emu_jax.training import optim, run_meta
from emu_jax.training.init_from import load_init_params, overlay_params
from emu_jax.training.state import abstract_state, create_state
from emu_jax.training.step import LossSpec, check_microbatches, make_train_step
from emu_jax.training.trainable import make_trainable_rule

log = logging.getLogger(__name__)


def build(cfg: ml_collections.ConfigDict):
    """Model, schedule and loss spec from a config, validated (no compile, no memory)."""
    emu_cfg = EmuConfig.from_dict(cfg.model.to_dict())
    d = cfg.diffusion
    schedule = make_schedule(
        d.beta_schedule, d.num_train_steps, d.beta_start, d.beta_end, zero_terminal_snr=d.zero_terminal_snr
    )
    if d.zero_terminal_snr and d.prediction == "eps":
        raise UserError(
            "diffusion.zero_terminal_snr with prediction 'eps' is undefined at t = N "
            "(alphas_cumprod[-1] = 0); use diffusion.prediction='v'"
        )
    t = cfg.train
    layout = conditioning.SlotLayout(t.slots.num_given, t.slots.factor, t.slots.pad)
    spec = LossSpec(
        task=t.task,
        prediction=d.prediction,
        weighting=t.loss_weighting,
        min_snr_gamma=t.min_snr_gamma,
        drop_text=t.drop_text,
        drop_image=t.drop_image,
        drop_both=t.drop_both,
        aug_max_level=t.aug_max_level,
        layout=layout,
    )
    return emu_cfg, schedule, spec


def expected_frames(emu_cfg: EmuConfig, spec: LossSpec) -> int | None:
    """Clip length the task needs (None: any, t2i takes one frame of each clip)."""
    if spec.task == "t2v":
        return emu_cfg.num_frames
    if spec.task == "interp":
        return spec.layout.num_slots
    return None


def validate(cfg: ml_collections.ConfigDict, emu_cfg: EmuConfig, spec: LossSpec, mesh) -> None:
    """Config errors a user can make, named before compiling."""
    t = cfg.train
    dp = sharding.data_parallel_size(mesh)
    if t.batch_size % dp:
        raise UserError(
            f"train.batch_size={t.batch_size} is not divisible by the data-parallel size {dp} (mesh {dict(mesh.shape)})"
        )
    check_microbatches(t.batch_size, dp, t.get("microbatches", 1))
    platform = mesh.devices.flat[0].platform
    if emu_cfg.unet.remat == "offload" and platform not in ("tpu", "gpu", "cuda", "rocm"):
        raise ValueError(
            f"model.unet.remat='offload' moves residuals to pinned host memory, which needs a TPU "
            f"or GPU; this mesh is on {platform!r}: use 'full' (or 'save_dots_no_batch')"
        )
    if t.batch_size % jax.process_count():
        raise UserError(f"train.batch_size={t.batch_size} is not divisible by {jax.process_count()} processes")
    for name in ("steps", "save_every", "log_every"):
        if t[name] < 1:
            raise UserError(f"train.{name} must be >= 1, got {t[name]}")
    want = expected_frames(emu_cfg, spec)
    keep = cfg.data.get("keep_frames", 0)
    if want is not None and (keep or cfg.data.num_frames) != want:
        given = f"data.keep_frames={keep}" if keep else f"data.num_frames={cfg.data.num_frames}"
        raise UserError(f"{given} does not match the model: task {spec.task!r} needs {want} frames per clip")
    if cfg.data.text_max_length != emu_cfg.text[0].max_length:
        raise UserError(
            f"data.text_max_length={cfg.data.text_max_length} differs from text encoder 0's "
            f"max_length={emu_cfg.text[0].max_length}"
        )
    if cfg.data.resolution != emu_cfg.resolution:
        raise UserError(f"data.resolution={cfg.data.resolution} differs from model.resolution={emu_cfg.resolution}")
    if spec.task == "t2i" and t.trainable == "temporal":
        raise UserError(
            "task 't2i' runs the U-Net in image mode, where the temporal layers are unused, so "
            "train.trainable='temporal' would train nothing; use 'spatial' or 'all'"
        )
    if spec.task in ("t2v", "interp") and not emu_cfg.unet.temporal:
        raise UserError(f"task {spec.task!r} needs temporal layers: set model.unet.temporal=True")
    if spec.task in ("t2v", "interp") and emu_cfg.unet.cond_channels != emu_cfg.unet.in_channels + 1:
        raise UserError(
            f"task {spec.task!r} needs model.unet.cond_channels = in_channels + 1 = "
            f"{emu_cfg.unet.in_channels + 1}, got {emu_cfg.unet.cond_channels}"
        )


def _batches(loader: Iterator[dict], model: EmuModel, mesh) -> Iterator[dict]:
    """Process-local numpy batches -> sharded global arrays.

    The loader tokenises captions for text encoder 0 (with the model's
    tokenizer, in its workers); any further encoders are tokenised here.
    """
    for batch in loader:
        arrays = {k: v for k, v in batch.items() if k in ("video", "latents") or k.startswith("context")}
        if "context_0" not in arrays:
            arrays["text_ids_0"], arrays["text_mask_0"] = batch["text_ids"], batch["text_mask"]
            captions = [_text(c) for c in batch["caption"]]
            for i in range(1, len(model.config.text)):
                arrays[f"text_ids_{i}"], arrays[f"text_mask_{i}"] = model.tokenize(captions, i)
        yield sharding.shard_batch(arrays, mesh)


def _text(c: Any) -> str:
    return c.decode() if isinstance(c, bytes) else str(c)


@contextlib.contextmanager
def _logs_held(name: str):
    """Hold the records logger `name` emits inside the block; replay them only if it succeeds.

    TFDS warns about a missing dataset before raising: the user then reads one error line, not two.
    """
    held: list[logging.LogRecord] = []

    class _Hold(logging.Filter):
        def filter(self, record):
            held.append(record)
            return False

    logger, hold = logging.getLogger(name), _Hold()
    logger.addFilter(hold)
    try:
        yield
    finally:
        logger.removeFilter(hold)
    for record in held:
        logger.handle(record)


@dataclasses.dataclass
class Run:
    """A configured run on a mesh: the model, the state's shardings, the compiled step and its runtime
    hyperparameters (`optim.hyperparams`)."""

    cfg: ml_collections.ConfigDict
    model: EmuModel
    mesh: Any
    rules: Any
    boxed_state: Any
    state_shardings: Any
    step_fn: Callable
    hp: dict
    _create: Callable

    def step(self, state, batch):
        """One training step: `step_fn(state, batch, hp)`, hp placed on the mesh once (replicated)."""
        if not isinstance(next(iter(self.hp.values())), jax.Array):
            self.hp = jax.device_put(self.hp, NamedSharding(self.mesh, PartitionSpec()))
        return self.step_fn(state, batch, self.hp)

    def abstract_hp(self):
        """The hyperparameters as ShapeDtypeStructs (replicated): for lowering without devices."""
        rep = NamedSharding(self.mesh, PartitionSpec())
        return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=rep) for k, v in self.hp.items()}

    def init_state(self):
        """Fresh state (with `train.init_from` overlaid), placed on the mesh.

        Call outside `use_mesh`: Flax's init would otherwise constrain params to
        their logical shardings before they are fitted to the mesh.
        """
        params = self.model.init(jax.random.key(self.cfg.seed))
        if self.cfg.train.init_from:
            params, report = overlay_params(
                params,
                load_init_params(self.cfg.train.init_from),
                groups=tuple(g for g in self.cfg.train.init_from_groups.split(",") if g),
            )
            log.info("init_from %s: %s", self.cfg.train.init_from, report)
        return jax.jit(self._create, out_shardings=self.state_shardings)(params)

    def abstract_state(self):
        """ShapeDtypeStructs with target shardings: the restore target on this mesh."""
        return ckpt_lib.abstract_like(jax.eval_shape(lambda: meta.unbox(self.boxed_state)), self.state_shardings)


# The jitted steps of this process's latest runs, by program: a run that differs from an earlier one only in
# `optim.hyperparams` (a recipe's next sub-stage, an ablation's LR arm) reuses its step, with no retrace
# and no compilation-cache load.
_STEPS: dict = {}
_MAX_STEPS = 4


def make_run(cfg: ml_collections.ConfigDict, mesh=None) -> Run:
    """Validate the config, then build model, shardings and the jitted step (compiled on first call)."""
    emu_cfg, schedule, spec = build(cfg)
    mesh = mesh if mesh is not None else sharding.make_mesh(dict(cfg.mesh.shape))
    rules = sharding.normalize_rules(cfg.mesh.logical_axis_rules or None)
    validate(cfg, emu_cfg, spec, mesh)
    model = EmuModel(emu_cfg)
    hp = optim.hyperparams(cfg.train.optimizer, cfg.train.steps, cfg.train.ema_decay, cfg.seed)
    make_tx = optim.make_tx(cfg.train.optimizer)
    tx = make_tx(hp)  # its state's shapes; the step rebuilds it from the traced hp
    is_trainable = make_trainable_rule(cfg.train.trainable, cfg.train.train_text)
    use_ema = cfg.train.ema_decay > 0
    # Abstract (boxed) state: shardings without allocating anything.
    boxed = abstract_state(model.abstract_params(), is_trainable, tx, use_ema)
    if not jax.tree.leaves(boxed.trainable):
        raise UserError(f"train.trainable={cfg.train.trainable!r} selects no parameters of this model")
    state_sh = sharding.params_shardings(boxed, mesh, rules)
    microbatches = cfg.train.get("microbatches", 1)
    # Everything the traced step closes over or is traced under, less the runtime hyperparameters.
    static_opt = {k: v for k, v in cfg.train.optimizer.to_dict().items() if k not in optim.RUNTIME_FIELDS}
    program = [cfg.model.to_dict(), cfg.diffusion.to_dict(), static_opt, microbatches]
    leaves, treedef = jax.tree.flatten(state_sh)
    key = (json.dumps(program, sort_keys=True, default=repr), spec, mesh, rules, tuple(leaves), treedef)
    step_fn = _STEPS.pop(key, None) or jax.jit(
        make_train_step(model, schedule, spec, make_tx, microbatches),
        in_shardings=(state_sh, None, None),
        out_shardings=(state_sh, None),
        donate_argnums=0,
    )
    _STEPS[key] = step_fn
    while len(_STEPS) > _MAX_STEPS:
        _STEPS.pop(next(iter(_STEPS)))
    return Run(
        cfg, model, mesh, rules, boxed, state_sh, step_fn, hp, lambda p: create_state(p, is_trainable, tx, use_ema)
    )


def train(
    cfg: ml_collections.ConfigDict,
    workdir: str | pathlib.Path,
    *,
    make_loader: Callable[..., Any] | None = None,
    stop_after: int | None = None,
    rewrite_meta: bool = False,
) -> dict:
    """Run (or resume) a training run; returns the last logged metrics.

    `stop_after`: stop (with a checkpoint) after this many steps of this call,
    as a preemption would; used by resumable demos. An existing run resumes
    only with its own model and task (else UserError, nothing written);
    `rewrite_meta` rewrites its `emu_jax.json` (e.g. new sampling defaults).
    """
    workdir = pathlib.Path(workdir)
    with as_user_error(types=(ValueError, TypeError)):
        run = make_run(cfg)  # every config error surfaces here, before compiling
    identity = run_meta.model_meta(cfg, run.model.config)
    old_meta = run_meta.check_resume(workdir, identity)  # before anything is written

    # ---- Input -------------------------------------------------------------------------------
    if make_loader is None:
        from emu_jax.data.pipeline import make_loader
    with _logs_held("absl"), as_user_error(f"data ({cfg.data.get('name', '')} in {cfg.data.get('data_dir', '')})"):
        loader = make_loader(
            cfg.data,
            split=cfg.data.split,
            seed=cfg.seed,
            tokenizer=run.model.tokenizers[0],
            batch_size=cfg.train.batch_size // jax.process_count(),
        )

    # ---- Init or resume ------------------------------------------------------------------------
    # A new run initialises (and reads train.init_from) before its folder exists: a bad init_from writes nothing.
    state = run.init_state() if not (workdir / "checkpoints").exists() else None
    with as_user_error(f"--workdir {workdir}", types=(OSError,)):
        workdir.mkdir(parents=True, exist_ok=True)
    ckpt = ckpt_lib.RunCheckpointer(workdir, keep=cfg.train.keep, async_save=cfg.train.async_save)
    if jax.process_index() == 0 and (old_meta is None or (rewrite_meta and old_meta != identity)):
        run_meta.write(workdir, identity)  # first: a killed run is still a loadable checkpoint
    elif old_meta is not None and old_meta != identity:
        log.warning(
            "emu_jax.json kept as it was (%s); --rewrite-meta updates it",
            "; ".join(f"{k}: {o!r} -> {n!r}" for k, o, n in run_meta.flat_diff(old_meta, identity)),
        )
    latest = ckpt.latest_step()
    if latest is not None:
        run_meta.log_changes(ckpt.restore_config(latest), cfg.to_dict())
        state = ckpt.restore(latest, run.abstract_state(), data_iterator=loader)
        log.info("resumed from step %d", latest)
    elif state is None:
        state = run.init_state()

    with sharding.use_mesh(run.mesh, run.rules):
        # ---- Loop ------------------------------------------------------------------------------
        start = int(jax.device_get(state.step))
        total = cfg.train.steps
        writer = metrics_lib.MetricsWriter(workdir, total, cfg.train.batch_size, start_step=start)
        window, last_row = [], {}
        batches = _batches(iter(loader), run.model, run.mesh)
        step = start
        try:
            while step < total:
                state, m = run.step(state, next(batches))
                step += 1
                window.append(m)
                preempted = ckpt.reached_preemption(step)
                stopping = preempted or (stop_after is not None and step - start >= stop_after)
                saving = step % cfg.train.save_every == 0 or step == total or stopping
                if saving or step % cfg.train.log_every == 0:
                    fetched = metrics_lib.fetch(window)
                    metrics_lib.check_finite(fetched)  # before any save: a bad state is never written
                    last_row = writer.write(fetched)
                    window = []
                if saving:
                    writer.flush()
                    ckpt.save(step, state, data_iterator=loader, config=cfg.to_dict(), force=True)
                if stopping:
                    log.warning("stopping at step %d (%s)", step, "preemption" if preempted else "stop_after")
                    break
        finally:
            ckpt.wait()
            writer.close()
    return {"step": step, **last_row}


def write_model_json(workdir: pathlib.Path, cfg: ml_collections.ConfigDict, emu_cfg: EmuConfig) -> None:
    """`emu_jax.json` beside the checkpoints: lets the sampler load a training workdir."""
    if jax.process_index() == 0:
        run_meta.write(pathlib.Path(workdir), run_meta.model_meta(cfg, emu_cfg))
