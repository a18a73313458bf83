"""`emu-video aot --program sample`: compile the sampling pipeline for a TPU slice and cost one video.

The programs are `emu_jax.sampling.programs.build`'s, the ones `emu-video sample` runs: per
stage a start (text encoders, conditioning, noise), a steps function (the guided denoising
loop with traced bounds) and a finish, then the VAE decode. They are lowered on
ShapeDtypeStruct params (`jax.eval_shape`, nothing allocated) and inputs, with the
Pipeline's shardings: the batch over the mesh's data axes, params replicated or (with a
`--mesh` that has fsdp / tensor > 1) sharded by their logical axes.

cost_analysis counts a loop body once: the steps program's `fori_loop` has traced bounds, so
its count is one denoising step, and the decode's `lax.map` over frame chunks counts one chunk.
Each program therefore carries a `repeat` (steps; chunks) that scales its FLOPs, bytes and
roofline time to a batch (tests/training/test_aot_sample.py checks both counts).
"""

from __future__ import annotations

import argparse
import logging
import math
import time

from emu_jax.training.aot_report import AotReport, GiB, SampleProgram, SampleReport

STAGES = ("keyframe", "video", "interp", "decode")
STAGE_CHOICES = STAGES + ("all",)
log = logging.getLogger(__name__)


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("--program sample")
    g.add_argument("--stage", default=None, help=f"sampling stage to compile: one of {STAGE_CHOICES} (default all)")
    g.add_argument("--steps", type=int, default=None, help="denoising steps per stage (default: the config's sampling)")
    g.add_argument(
        "--mesh",
        default=None,
        help="device mesh as for emu-video sample, e.g. data=-1,fsdp=8: params sharded over fsdp / tensor "
        "(default: data over every device, params replicated)",
    )
    g.add_argument(
        "--interp-config",
        default=None,
        help="config of interpolation model I (e.g. configs/emu_video.py:interp); without it no interp stage",
    )
    g.add_argument("--mfu", type=float, default=0.4, help="MFU for the stated seconds / chip-hours (default 0.4)")


def setup(args: argparse.Namespace, num_devices: int) -> dict:
    """Every sampling flag checked (UserError / ValueError naming the value) before anything compiles."""
    from emu_jax import sharding
    from emu_jax.config import config_from_args, load_config
    from emu_jax.errors import UserError
    from emu_jax.sampling.cli import parse_mesh
    from emu_jax.sampling.settings import Settings

    stage = args.stage or "all"
    if stage not in STAGE_CHOICES:
        raise UserError(f"--stage {stage!r} is not one of {STAGE_CHOICES}")
    if args.per_chip_batch is not None and args.per_chip_batch < 1:
        raise UserError(f"--per-chip-batch must be >= 1, got {args.per_chip_batch}")
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    if not 0 < args.mfu <= 1:
        raise UserError(f"--mfu must be in (0, 1], got {args.mfu}")
    mesh_shape = parse_mesh(args.mesh)
    try:
        sizes = sharding.resolve_mesh_shape(mesh_shape or {"data": -1}, num_devices)
    except ValueError as e:
        raise UserError(f"--mesh {args.mesh}: {e}") from e
    cfg = config_from_args(args.config, args.config_overrides)
    if cfg.train.task != "t2v":
        raise UserError(
            f"--config must be a text-to-video (t2v) config for --program sample, got task {cfg.train.task!r}"
        )
    icfg = load_config(args.interp_config) if args.interp_config else None
    if icfg is not None and icfg.train.task != "interp":
        raise UserError(f"--interp-config must be an interpolation config, got task {icfg.train.task!r}")
    if stage == "interp" and icfg is None:
        raise UserError("--stage interp needs --interp-config (e.g. configs/emu_video.py:interp)")
    settings = Settings.from_dict(cfg.sampling.to_dict(), num_steps=args.steps)
    stages = [s for s in STAGES if stage in ("all", s) and (s != "interp" or icfg is not None)]
    return dict(
        cfg=cfg,
        icfg=icfg,
        settings=settings,
        stages=stages,
        mesh_shape=mesh_shape,
        shard_params=bool(mesh_shape) and (sizes["fsdp"] > 1 or sizes["tensor"] > 1),
        data_parallel=sizes["data"] * sizes["fsdp"],
        per_device=args.per_chip_batch or 1,
        mfu=args.mfu,
    )


def stage_model(cfg, settings, interp: bool = False):
    """A StageModel from a training config; tokenizers become byte-level stand-ins (shapes are what count)."""
    from emu_jax import conditioning
    from emu_jax.diffusion.schedules import make_schedule
    from emu_jax.models.emu import EmuConfig, EmuModel
    from emu_jax.sampling.programs import StageModel

    cfg = cfg.copy_and_resolve_references()
    for te in cfg.model.text_encoders:
        te["tokenizer"] = "byte"
    d = cfg.diffusion
    schedule = make_schedule(
        d.beta_schedule, d.num_train_steps, d.beta_start, d.beta_end, zero_terminal_snr=d.zero_terminal_snr
    )
    settings.validate(schedule, d.prediction)
    s = cfg.train.slots
    layout = conditioning.SlotLayout(s.num_given, s.factor, s.pad) if interp else None
    model = EmuModel(EmuConfig.from_dict(cfg.model.to_dict()))
    plan = settings.plan(schedule, d.prediction)
    rescale, level, passes = settings.guidance_rescale, int(settings.interp_aug_level), settings.guidance_passes
    return StageModel(model, plan, schedule, rescale, layout, level, passes, settings.unguided())


def abstract_params(model, mesh, shard: bool, settings):
    """(ShapeDtypeStruct params with the Pipeline's shardings and the settings' dtype, bytes per device)."""
    import jax
    from flax.core import meta

    from emu_jax import sharding

    boxed = model.abstract_params()
    shapes = meta.unbox(boxed)
    if shard:
        shardings = sharding.params_shardings(boxed, mesh)
    else:
        shardings = jax.tree.map(lambda _: sharding.replicated(mesh), shapes)
    structs = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)
    structs = settings.cast_params(structs)
    per_device = sum(math.prod(s.sharding.shard_shape(s.shape)) * s.dtype.itemsize for s in jax.tree.leaves(structs))
    return structs, int(per_device)


def text_flops(model, rows: int) -> float:
    """Frozen text encoders' forward on `rows` prompts plus the one empty prompt: 2 x non-embedding params x tokens."""
    from flax import traverse_util
    from flax.core import meta

    text = meta.unbox(model.abstract_params()["text"])
    total = 0.0
    for i, enc in enumerate(model.config.text):
        leaves = traverse_util.flatten_dict(dict(text[str(i)]), sep="/")
        n = sum(math.prod(v.shape) for k, v in leaves.items() if "embed" not in k.lower())
        total += 2 * n * enc.max_length * (rows + 1)
    return total


def _compile(fn, args, topo, mesh, n: int, model_flops: float, kernel_flops: float, per_device: int, inner: int = 1):
    """Lower + compile one program; (AotReport per device, compiled, lowered). `inner`: the trip count of
    a loop inside the step (sequential guidance passes), whose body cost_analysis counts once."""
    from emu_jax import sharding

    t0 = time.perf_counter()
    with sharding.use_mesh(mesh):
        lowered = fn.lower(*args)
    compiled = lowered.compile()
    secs = time.perf_counter() - t0
    mem, cost = compiled.memory_analysis(), compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    per_chip = topo.num_chips / n
    report = AotReport(
        topo.name,
        n,
        dict(mesh.shape),
        per_device * n,
        per_device,
        "none",
        int(mem.argument_size_in_bytes),
        int(mem.output_size_in_bytes),
        int(mem.temp_size_in_bytes),
        int(mem.alias_size_in_bytes),
        topo.hbm_bytes_per_chip * topo.num_chips // n,
        float(cost.get("flops", 0.0)) * inner,
        compile_seconds=round(secs, 1),
        host_temp_bytes=int(getattr(mem, "host_temp_size_in_bytes", 0) or 0),
        bytes_accessed=float(cost.get("bytes accessed", 0.0)) * inner,
        model_flops=model_flops / n,
        kernel_flops=kernel_flops / n,
        peak_flops_per_s=topo.chip.peak_tflops_bf16 * 1e12 * per_chip,
        hbm_bytes_per_s=topo.chip.hbm_gb_per_s * 1e9 * per_chip,
    )
    log.info("compiled %s in %.0f s", fn, secs)
    return report, compiled, lowered


def _splash_flops(unet_cfg, rows: int, frames: int, size: int, text_len: int, image_mode: bool) -> float:
    """Attention FLOPs the splash kernel runs in one forward on TPU (cost_analysis does not see Pallas)."""
    from emu_jax.models import flops
    from emu_jax.models.attention import SPLASH_MIN_LENGTH

    if unet_cfg.attention_impl == "splash":  # every attention core, text and temporal ones too
        f = flops.unet_flop_count(unet_cfg, rows, frames, size, size, text_len, image_mode=image_mode)
        return f.attention_spatial + f.attention_temporal
    if unet_cfg.attention_impl != "auto":
        return 0.0
    return flops.spatial_self_attention_flops(unet_cfg, rows, frames, size, size, SPLASH_MIN_LENGTH, image_mode)


def check_interp(main, interp) -> None:
    """The Pipeline's compatibility checks of F and I, as one-line errors before compiling."""
    from emu_jax.errors import UserError

    fc, ic, lay = main.model.config, interp.model.config, interp.layout
    if (fc.latent_size, fc.unet.in_channels) != (ic.latent_size, ic.unet.in_channels):
        raise UserError(
            f"--interp-config latents {ic.latent_size}px x {ic.unet.in_channels} do not match "
            f"F's {fc.latent_size}px x {fc.unet.in_channels}"
        )
    if fc.num_frames not in (lay.num_given, 2 * lay.num_given):
        raise UserError(
            f"--interp-config layout takes {lay.num_given} or {2 * lay.num_given} frames; F makes {fc.num_frames}"
        )


def compile_sampling(s: dict, topo, devices: list, per_device: int, progress=print) -> SampleReport:
    """Compile the requested stages' programs for `devices`: memory per device, cost per video."""
    import jax
    import jax.numpy as jnp

    from emu_jax import sharding
    from emu_jax.models import flops
    from emu_jax.models.attention import SPLASH_MIN_LENGTH
    from emu_jax.sampling import programs
    from emu_jax.sampling import stages as st

    n = len(devices)
    mesh = sharding.make_mesh(s["mesh_shape"] or {"data": -1}, devices)
    b = per_device * sharding.data_parallel_size(mesh)
    main = stage_model(s["cfg"], s["settings"])
    interp = stage_model(s["icfg"], s["settings"], interp=True) if s["icfg"] is not None else None
    if interp is not None:
        check_interp(main, interp)
    fns = programs.build(mesh, main, interp)
    rep = sharding.replicated(mesh)
    f32, i32 = jnp.float32, jnp.int32

    def rows(shape, dtype=f32):
        return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding.batch_sharding(mesh, len(shape)))

    def scalar(dtype=f32):
        return jax.ShapeDtypeStruct((), dtype, sharding=rep)

    def tokens(model, nrows, sh=None):
        out = {}
        for i, t in enumerate(model.config.text):
            for key, dt in (("ids", i32), ("mask", jnp.bool_)):
                shape = (nrows, t.max_length)
                out[f"text_{key}_{i}"] = jax.ShapeDtypeStruct(shape, dt, sharding=sh) if sh else rows(shape, dt)
        return out

    def outputs(lowered, compiled):
        return jax.tree.map(
            lambda o, sh: jax.ShapeDtypeStruct(o.shape, o.dtype, sharding=sh),
            lowered.out_info,
            compiled.output_shardings,
        )

    cfg = main.model.config
    size, ch, frames = cfg.latent_size, cfg.unet.in_channels, cfg.num_frames
    steps = s["settings"].num_steps
    params = {"main": abstract_params(main.model, mesh, s["shard_params"], s["settings"])}
    if interp is not None:
        params["interp"] = abstract_params(interp.model, mesh, s["shard_params"], s["settings"])
    common = (rows((b,), i32), rows((b,), i32))  # seeds, prompt indices
    halves = frames // interp.layout.num_given if interp is not None else 1
    pieces = {"keyframe": rows((b, 1, size, size, ch)), "video": rows((b, frames, size, size, ch))}
    if interp is not None:
        joined = jax.eval_shape(
            lambda r: st.join_halves(r, halves, interp.layout),
            jax.ShapeDtypeStruct((b * halves, interp.layout.num_slots, size, size, ch), f32),
        )
        pieces["interp"] = rows(joined.shape)
    report_stages: dict[str, list[SampleProgram]] = {}

    def one(stage, name, fn, args, model_flops, kernel, which=None, repeat=1, inner=1):
        progress(f"  compiling {stage}/{name} ...")
        r, compiled, lowered = _compile(fn, args, topo, mesh, n, model_flops, kernel, per_device, inner)
        # printed as each program compiles, so a long run shows its numbers before the last stage
        progress(
            f"  {stage}/{name}: {r.total_bytes / GiB:.2f} GiB per device ({100 * r.total_bytes / r.hbm_bytes:.0f}%"
            f" of HBM; temporaries {r.temp_bytes / GiB:.2f} GiB), compiled in {r.compile_seconds:.0f} s"
        )
        pbytes = params[which][1] if which else 0
        report_stages.setdefault(stage, []).append(SampleProgram(name, r, repeat, pbytes))
        return outputs(lowered, compiled)

    for stage in [x for x in s["stages"] if x != "decode"]:
        sm, which = (interp, "interp") if stage == "interp" else (main, "main")
        p = params[which][0]
        nrows = b * halves if stage == "interp" else b
        mode, image_mode = st.STAGE_MODES[stage]
        extra = {"keyframe": (), "video": (pieces["keyframe"],), "interp": (pieces["video"],)}[stage]
        start_args = (p, tokens(sm.model, b), tokens(sm.model, 1, rep)) + common + extra
        cb, state, keys = one(stage, "start", fns[stage + "_start"], start_args, text_flops(sm.model, nrows), 0, which)
        ucfg = sm.model.config.unet
        stage_frames = 1 if stage == "keyframe" else state.x.shape[1]
        text_len = sm.model.config.text[0].max_length
        run_mode = "none" if stage in sm.unguided else mode  # every scale 1: one forward per step
        count = flops.sample_stage_flops(ucfg, nrows, stage_frames, size, size, text_len, 1, run_mode, image_mode)
        kernel = _splash_flops(ucfg, nrows * count["passes"], stage_frames, size, text_len, image_mode)
        scales = {k: scalar() for k in (("text",) if mode == "text" else ("image", "text"))}
        steps_args = (p, cb, state, keys, scales, scalar(i32), scalar(i32))
        inner = count["passes"] if sm.guidance_passes == "sequential" else 1
        state = one(stage, "steps", fns[stage + "_steps"], steps_args, count["per_step"], kernel, which, steps, inner)
        pieces[stage] = one(stage, "finish", fns[stage + "_finish"], (state,), 0.0, 0)
    if "decode" in s["stages"]:
        total = sum(x.shape[1] for x in pieces.values())
        chunk = min(8, total)  # stages.decode's default, as the Pipeline calls it
        repeat = -(-total // chunk)
        vae = flops.vae_decode_flops(cfg.vae, b * total, size, size)
        attn = flops.vae_decode_flops(cfg.vae, b * chunk, size, size)["attention"]
        kernel = attn if size * size >= SPLASH_MIN_LENGTH else 0.0  # its single-head attention is 'auto'
        one(
            "decode",
            "decode",
            fns["decode"],
            (params["main"][0],) + tuple(pieces.values()),
            vae["total"] / repeat,
            kernel,
            "main",
            repeat,
        )
    dtypes = sorted({str(x.dtype) for x in jax.tree.leaves(params["main"][0])})
    how = "as initialised" if s["settings"].param_dtype == "stored" else "sampling.param_dtype"
    notes = [f"params {how} ({dtypes})"]
    if interp is None:
        notes.append(f"no --interp-config: the video is F's {frames} frames, no interpolation stage")
    return SampleReport(
        topo.name,
        n,
        topo.num_chips,
        dict(mesh.shape),
        per_device,
        b,
        steps,
        s["mfu"],
        report_stages,
        resident_param_bytes=sum(v[1] for v in params.values()),
        notes=tuple(notes),
    )


def main(args: argparse.Namespace) -> int:
    """`emu-video aot --program sample`: 0 when the video fits, 1 when not, 2 for a bad argument."""
    import json
    import os
    import sys

    from emu_jax.errors import check_output_file, one_line
    from emu_jax.training.aot_search import find_max_batch, report_or_none
    from emu_jax.training.tpu_topology import require_libtpu, resolve_topology, topology_devices

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        for flag, value, default in (("--remat", args.remat, None), ("--microbatches", args.microbatches, None)):
            if value != default:
                raise ValueError(f"{flag} is a train-step flag; --program sample takes none")
        if args.json:
            check_output_file(args.json, "--json")
        topo = resolve_topology(args.topology)
        s = setup(args, topo.num_chips)
        require_libtpu()
        import jax

        if not os.environ.get("JAX_PLATFORMS"):
            jax.config.update("jax_platforms", "cpu")  # the host compiles; never probe for a local TPU
        devices = topology_devices(topo)
    except (ValueError, OSError, KeyError, RuntimeError, TypeError, SyntaxError) as e:
        print(f"emu-video aot: error: {one_line(e)}", file=sys.stderr)
        return 2
    print(
        f"{topo.name} -> libtpu {topo.libtpu_name}: {topo.num_chips} chips, {len(devices)} devices "
        f"({devices[0].device_kind}), {topo.hbm_bytes_per_chip / GiB:.0f} GiB HBM per chip; sampling "
        f"{'+'.join(s['stages'])}, {s['settings'].num_steps} steps",
        flush=True,
    )

    def one(b: int) -> SampleReport | None:
        print(f"compiling the sampler at per-device batch {b} ...", flush=True)
        return report_or_none(b, lambda: compile_sampling(s, topo, devices, b, progress=lambda m: print(m, flush=True)))

    if args.find_max_batch:
        best, tried = find_max_batch(one, start=s["per_device"])
        print(f"largest per-device sampling batch that fits on {topo.name}: {best}")
        reports, ok = [r for r in tried.values() if r is not None], best > 0
    else:
        report = one(s["per_device"])
        best, reports, ok = None, [report] if report else [], bool(report and report.fits)
    if args.json:
        with open(args.json, "w") as f:
            doc = {"program": "sample", "topology": topo.name, "libtpu_topology": topo.libtpu_name}
            doc.update(max_per_chip_batch=best, reports=[r.summary() for r in reports])
            json.dump(doc, f, indent=2)
    return 0 if ok else 1
