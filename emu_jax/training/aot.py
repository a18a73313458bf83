"""`emu-video aot`: compile the train step for a TPU slice from any host and report its memory.

libtpu (from `jax[tpu]`) can describe a TPU topology without the chips being
there, so a CPU host can lower and compile the real sharded train step for,
say, a v5p-128 slice and read the compiler's per-device memory plan (as
MaxText's train_compile does). That catches an out-of-memory config before a
pod is booked. Nothing is allocated: the state and the batch are
ShapeDtypeStructs with the shardings the run would use.

Slice names (`--topology`, e.g. v5p-128 or `v5p:2x2x2`) and the chip table are in
emu_jax.training.tpu_topology.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time

from emu_jax.models.unet_config import REMAT_POLICIES
from emu_jax.training.aot_report import AotReport, GiB
from emu_jax.training.aot_search import find_max_batch, report_or_none
from emu_jax.training.tpu_topology import Topology, require_libtpu, resolve_topology, topology_devices

__all__ = ["AotReport", "GiB", "compile_train_step", "find_max_batch", "main"]
log = logging.getLogger(__name__)


def abstract_batch(run, global_batch: int, input_kind: str) -> dict:
    """ShapeDtypeStructs of one global batch, sharded over the data-parallel axes."""
    import jax
    import jax.numpy as jnp

    from emu_jax import sharding
    from emu_jax.training import loop

    cfg, emu = run.cfg, run.model.config
    _, _, spec = loop.build(cfg)
    frames = loop.expected_frames(emu, spec) or cfg.data.num_frames
    if input_kind == "latents":
        shapes = {
            "latents": ((global_batch, frames, emu.latent_size, emu.latent_size, emu.unet.in_channels), jnp.float32)
        }
    else:
        shapes = {"video": ((global_batch, frames, emu.resolution, emu.resolution, 3), jnp.float32)}
    for i, t in enumerate(emu.text):
        shapes[f"text_ids_{i}"] = ((global_batch, t.max_length), jnp.int32)
        shapes[f"text_mask_{i}"] = ((global_batch, t.max_length), jnp.bool_)
    return {
        k: jax.ShapeDtypeStruct(s, d, sharding=sharding.batch_sharding(run.mesh, len(s)))
        for k, (s, d) in shapes.items()
    }


def prepare_config(cfg, per_device_batch: int, num_devices: int, remat: str | None, microbatches: int | None = None):
    """The run's config with the AOT batch, remat and microbatches; tokenizers become byte-level stand-ins
    (only the empty prompt's tokens are computed from them; shapes come from max_length)."""
    cfg = cfg.copy_and_resolve_references()
    cfg.train.batch_size = per_device_batch * num_devices
    if remat:
        cfg.model.unet.remat = remat
    if microbatches:
        cfg.train.microbatches = microbatches
    for te in cfg.model.text_encoders:
        te["tokenizer"] = "byte"
    return cfg


def uses_splash(unet_cfg) -> bool:
    """Whether the U-Net's attention runs as the splash Pallas kernel on TPU (XLA does not count its FLOPs)."""
    return unet_cfg.attention_impl in ("splash", "auto")  # 'auto' resolves to splash on TPU


def analytic_flops(run, cfg, input_kind: str) -> tuple[float, float]:
    """(model FLOPs, Pallas-kernel FLOPs) of one step over the whole slice, from the config.

    Model: the U-Net's forward + backward (emu_jax.models.flops.train_step_flops) plus the frozen
    text encoders' forward (2 x non-embedding params x tokens; their attention cores are left out).
    The VAE encoder (video input) is not counted. Kernel: the attention cores' FLOPs when they run
    as splash, as executed: forward (twice under remat) + backward (2x).
    """
    from flax import traverse_util
    from flax.core import meta

    from emu_jax.models import flops
    from emu_jax.training import loop

    emu = run.model.config
    _, _, spec = loop.build(cfg)
    b = cfg.train.batch_size
    frames = 1 if spec.task == "t2i" else (loop.expected_frames(emu, spec) or cfg.data.num_frames)
    text_len = emu.text[0].max_length
    step = flops.train_step_flops(
        emu.unet,
        b,
        frames,
        emu.latent_size,
        emu.latent_size,
        text_len,
        cfg.train.trainable,
        image_mode=spec.task == "t2i",
    )
    model = step["total"]
    del input_kind  # both batch kinds carry token ids: the text encoders run in the step
    text = meta.unbox(run.model.abstract_params()["text"])
    for i, enc in enumerate(emu.text):
        leaves = traverse_util.flatten_dict(dict(text[str(i)]), sep="/")
        n = sum(math.prod(v.shape) for k, v in leaves.items() if "embed" not in k.lower())
        model += 2 * n * enc.max_length * b
    kernel = 0.0
    if uses_splash(emu.unet):
        attn = step["forward_attention_spatial"] + step["forward_attention_temporal"]
        kernel = attn * (2 if emu.unet.remat != "none" else 1) + 2 * attn
    return model, kernel


def compile_train_step(
    cfg,
    topo: Topology,
    devices: list,
    per_device_batch: int,
    remat: str | None = None,
    input_kind: str = "video",
    microbatches: int | None = None,
) -> AotReport:
    """Lower + compile the sharded train step for `devices`; memory, FLOPs and roofline per device."""
    from emu_jax import sharding
    from emu_jax.training import loop

    cfg = prepare_config(cfg, per_device_batch, len(devices), remat, microbatches)
    mesh = sharding.make_mesh(dict(cfg.mesh.shape), devices)
    run = loop.make_run(cfg, mesh)  # validates the config; abstract state only
    t0 = time.perf_counter()
    with sharding.use_mesh(run.mesh, run.rules):
        batch = abstract_batch(run, cfg.train.batch_size, input_kind)
        lowered = run.step_fn.lower(run.abstract_state(), batch, run.abstract_hp())
    log.info("lowered in %.0f s", time.perf_counter() - t0)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    log.info("compiled in %.0f s", t2 - t1)
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    n = len(devices)
    hbm = topo.hbm_bytes_per_chip * topo.num_chips // n
    per_chip = topo.num_chips / n  # v4 / v5p megacore: one device per chip
    model_flops, kernel_flops = analytic_flops(run, cfg, input_kind)
    # cost_analysis counts the microbatch scan's body once. The optimiser update outside it is a tiny
    # share (tiny config: N x the count at N = 2, 4 is within 0.3% of the N = 1 count), so scale by N.
    mb = int(cfg.train.get("microbatches", 1))
    return AotReport(
        topo.name,
        n,
        dict(mesh.shape),
        cfg.train.batch_size,
        per_device_batch,
        run.model.config.unet.remat,
        int(mem.argument_size_in_bytes),
        int(mem.output_size_in_bytes),
        int(mem.temp_size_in_bytes),
        int(mem.alias_size_in_bytes),
        hbm,
        float(cost.get("flops", 0.0)) * mb,
        microbatches=mb,
        compile_seconds=round(t2 - t0, 1),
        host_temp_bytes=int(getattr(mem, "host_temp_size_in_bytes", 0) or 0),
        bytes_accessed=float(cost.get("bytes accessed", 0.0)) * mb,
        model_flops=model_flops / n,
        kernel_flops=kernel_flops / n,
        peak_flops_per_s=topo.chip.peak_tflops_bf16 * 1e12 * per_chip,
        hbm_bytes_per_s=topo.chip.hbm_gb_per_s * 1e9 * per_chip,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from emu_jax.config import add_config_argument

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Needs libtpu (pip install -e .[tpu]); no TPU: this host compiles for the slice.\n"
        "Slices: v4-N / v5p-N count TensorCores (v5p-8 = 2x2x1 chips, v5p-128 = 4x4x4),\n"
        "v5e-N / v6e-N count chips (v5e-256 = 16x16). HBM per chip: v5p 95, v4 32, v6e 32, v5e 16 GiB.\n"
        "Roofline: bf16 peak / HBM bandwidth per chip: v5p 459 TFLOP/s, 2765 GB/s; v5e 197, 819;\n"
        "v6e 918, 1640; v4 275, 1228.\n"
        "Example: emu-video aot --config configs/emu_video.py:stage2 --topology v5p-128 --find-max-batch"
    )
    add_config_argument(parser)
    parser.add_argument(
        "--program",
        choices=("train", "sample"),
        default="train",
        help="train: the train step (default); sample: the sampling pipeline's programs (emu_jax.training.aot_sample)",
    )
    parser.add_argument(
        "--topology",
        required=True,
        help="TPU slice: v5p-128 (v4/v5p count TensorCores), v5e-256 / v6e-64 (count chips), "
        "or a libtpu name like v5p:2x2x2",
    )
    parser.add_argument(
        "--per-chip-batch",
        type=int,
        default=None,
        help="examples per device (global batch = this x devices); default: train.batch_size / devices",
    )
    parser.add_argument(
        "--remat",
        choices=REMAT_POLICIES,
        default=None,
        help="U-Net rematerialisation policy (default: the config's model.unet.remat)",
    )
    parser.add_argument(
        "--input",
        choices=("auto", "video", "latents"),
        default="auto",
        help="batch holds pixels (VAE encode inside the step) or cached latents; "
        "auto: latents when data.name == 'latents'",
    )
    parser.add_argument(
        "--microbatches",
        type=int,
        default=None,
        help="gradient accumulation: split each device's batch into N microbatches "
        "(default: the config's train.microbatches)",
    )
    parser.add_argument(
        "--find-max-batch",
        action="store_true",
        help="search (doubling, then bisection) the largest per-chip batch that fits in HBM",
    )
    parser.add_argument("--json", default=None, help="also write the report(s) to this JSON file")
    from emu_jax.training.aot_sample import add_sample_arguments

    add_sample_arguments(parser)


def _setup(args: argparse.Namespace):
    """Arguments, config, libtpu and the slice's devices: every error before a compile."""
    from emu_jax.config import config_from_args

    for flag in ("stage", "steps", "mesh", "interp_config"):
        if getattr(args, flag, None) is not None:
            raise ValueError(f"--{flag.replace('_', '-')} is for --program sample")
    topo = resolve_topology(args.topology)
    cfg = config_from_args(args.config, args.config_overrides)
    if args.per_chip_batch is not None and args.per_chip_batch < 1:
        raise ValueError(f"--per-chip-batch must be >= 1, got {args.per_chip_batch}")
    microbatches = getattr(args, "microbatches", None)
    if microbatches is not None and microbatches < 1:
        raise ValueError(f"--microbatches must be >= 1, got {microbatches}")
    from emu_jax import sharding
    from emu_jax.training.step import check_microbatches

    num_devices = topo.num_chips  # one JAX device per chip on every generation here (megacore on v4 / v5p)
    per_device = args.per_chip_batch or cfg.train.batch_size // num_devices
    shape = sharding.resolve_mesh_shape(dict(cfg.mesh.shape), num_devices)
    check_microbatches(
        per_device * num_devices, shape["data"] * shape["fsdp"], microbatches or cfg.train.get("microbatches", 1)
    )
    require_libtpu()
    import jax

    if not os.environ.get("JAX_PLATFORMS"):
        jax.config.update("jax_platforms", "cpu")  # the host compiles; never probe for a local TPU
    devices = topology_devices(topo)
    per_device = args.per_chip_batch
    if per_device is None:
        if cfg.train.batch_size % len(devices):
            raise ValueError(
                f"train.batch_size={cfg.train.batch_size} is not divisible by {len(devices)} "
                f"devices of {topo.name}; pass --per-chip-batch"
            )
        per_device = cfg.train.batch_size // len(devices)
    return topo, cfg, devices, per_device


def main(args: argparse.Namespace) -> int:
    if getattr(args, "program", "train") == "sample":
        from emu_jax.training import aot_sample

        return aot_sample.main(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from emu_jax.errors import check_output_file, one_line

    try:
        if args.json:
            check_output_file(args.json, "--json")  # before an hour of compiling
        topo, cfg, devices, per_device = _setup(args)
    except (ValueError, OSError, KeyError, RuntimeError, TypeError, SyntaxError) as e:
        print(f"emu-video aot: error: {one_line(e)}", file=sys.stderr)
        return 2
    input_kind = args.input if args.input != "auto" else ("latents" if cfg.data.name == "latents" else "video")
    print(
        f"{topo.name} -> libtpu {topo.libtpu_name}: {topo.num_chips} chips, {len(devices)} devices "
        f"({devices[0].device_kind}), {topo.hbm_bytes_per_chip / GiB:.0f} GiB HBM per chip",
        flush=True,
    )

    def one(b: int) -> AotReport | None:
        print(f"compiling per-device batch {b} ...", flush=True)
        return report_or_none(
            b,
            lambda: compile_train_step(
                cfg, topo, devices, b, args.remat, input_kind, getattr(args, "microbatches", None)
            ),
        )

    if args.find_max_batch:
        best, tried = find_max_batch(one, start=per_device)
        print(
            f"largest per-chip batch that fits on {topo.name}: {best}"
            + (f" (global {best * len(devices)})" if best else " (none: try --remat full or a bigger slice)")
        )
        reports = [r for r in tried.values() if r is not None]
        ok = best > 0
    else:
        report = one(per_device)
        best, reports, ok = None, [report] if report else [], bool(report and report.fits)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "topology": topo.name,
                    "libtpu_topology": topo.libtpu_name,
                    "max_per_chip_batch": best,
                    "reports": [r.summary() for r in reports],
                },
                f,
                indent=2,
            )
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    from emu_jax.config import split_overrides

    _parser = argparse.ArgumentParser(prog="python -m emu_jax.training.aot")
    add_arguments(_parser)
    _rest, _overrides = split_overrides(sys.argv[1:])
    _args = _parser.parse_args(_rest)
    _args.config_overrides = _overrides
    sys.exit(main(_args))
