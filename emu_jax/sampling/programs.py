"""The jitted programs a sampling run executes, one set per stage, for a mesh.

Per denoising stage (keyframe, video, interp): `<stage>_start` (text encoding,
conditioning batch, initial noise), `<stage>_steps` (steps [i0, i1) of the guided loop,
traced bounds so one executable serves every chunk) and `<stage>_finish`; plus
`encode_image`, `encode_video` and `decode`. `Pipeline` runs them on real params; `emu-video aot
--program sample` lowers the very same functions on abstract ones for a TPU slice.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from emu_jax import conditioning, sharding
from emu_jax.diffusion import samplers
from emu_jax.diffusion.schedules import Schedule
from emu_jax.sampling import stages
from emu_jax.sampling.stages import item_keys

DENOISING_STAGES = ("keyframe", "video", "interp")


@dataclasses.dataclass(frozen=True)
class StageModel:
    """What a denoising stage's programs close over: the model, its sampling plan and schedule."""

    model: Any
    plan: samplers.SamplingPlan
    schedule: Schedule
    rescale_phi: float = 0.0
    layout: conditioning.SlotLayout | None = None  # model I only
    aug_level: int = 100  # model I only
    guidance_passes: str = "batched"  # Settings.guidance_passes
    unguided: tuple[str, ...] = ()  # Settings.unguided(): stages run as the one fully conditioned forward


def rows(mesh: Mesh, a: jax.Array) -> jax.Array:
    """Batch-shard an array, so each process holds exactly the rows it fed."""
    return jax.lax.with_sharding_constraint(a, sharding.batch_sharding(mesh, a.ndim))


def replicated_vae(mesh: Mesh, params: dict) -> dict:
    """`params` with the VAE's weights gathered whole onto every device for the decode. The VAE is small
    (~0.3 GiB), and left fsdp-sharded its weights' sharding spreads into the 512 px activations: the paper's
    decode needed 21.3 GiB of temporaries per v5e chip at fsdp=8 against 5.3 GiB replicated (docs/aot.md)."""
    whole = sharding.replicated(mesh)
    return {**params, "vae": jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, whole), params["vae"])}


def pin(mesh: Mesh, state: samplers.SamplerState) -> samplers.SamplerState:
    """Batch-shard the sampler state so the steps function sees one input sharding (one compile)."""
    return jax.tree.map(lambda a: rows(mesh, a), state)


def build(mesh: Mesh, main: StageModel, interp: StageModel | None = None, gather_per_step: bool | None = None) -> dict:
    """One jitted start + steps + finish per stage (closures over models, plans and schedules).

    `gather_per_step` (default: when the mesh shards params over fsdp) gathers the weights inside each
    denoising step rather than once for the whole loop (`stages.denoise_steps`).
    """
    m, plan, sched = main.model, main.plan, main.schedule
    fns = {
        "keyframe_start": jax.jit(
            lambda p, tok, unc, seed, idx: stages.keyframe_start(m, p, tok, unc, item_keys(seed, idx), plan, sched)
        ),
        "video_start": jax.jit(
            lambda p, tok, unc, seed, idx, kf: stages.video_start(m, p, tok, unc, item_keys(seed, idx), plan, sched, kf)
        ),
        "encode_image": jax.jit(lambda p, x: rows(mesh, m.encode_video(p, x[:, None]))),
        "encode_video": jax.jit(lambda p, x: rows(mesh, m.encode_video(p, x))),
        # the pieces are joined on the device, so no process needs another's rows
        "decode": jax.jit(
            lambda p, *zs: rows(mesh, stages.decode(m, replicated_vae(mesh, p), jnp.concatenate(zs, axis=1)))
        ),
        "keyframe_finish": jax.jit(lambda st: rows(mesh, stages.finish(plan, sched, st))),
        "video_finish": jax.jit(lambda st: rows(mesh, stages.finish(plan, sched, st))),
    }
    models = {"keyframe": main, "video": main}
    if interp is not None:
        mi, ip, isch, lay, lvl = interp.model, interp.plan, interp.schedule, interp.layout, int(interp.aug_level)
        fns["interp_start"] = jax.jit(
            lambda p, tok, unc, seed, idx, video: stages.interp_start(
                mi, p, tok, unc, item_keys(seed, idx), ip, isch, video, lay, lvl
            )
        )
        halves = m.config.num_frames // lay.num_given
        fns["interp_finish"] = jax.jit(
            lambda st: rows(mesh, stages.join_halves(stages.finish(ip, isch, st), halves, lay))
        )
        models["interp"] = interp
    gather = mesh.shape.get("fsdp", 1) > 1 if gather_per_step is None else gather_per_step
    for name, sm in models.items():
        mode, image_mode = stages.STAGE_MODES[name]
        fns[name + "_steps"] = jax.jit(
            lambda p, cb, st, k, scales, i0, i1, sm=sm, mode=mode, im=image_mode, ug=name in sm.unguided: pin(
                mesh,
                stages.denoise_steps(
                    sm.model,
                    p,
                    sm.plan,
                    sm.schedule,
                    cb,
                    st,
                    k,
                    scales,
                    i0,
                    i1,
                    mode=mode,
                    image_mode=im,
                    rescale_phi=sm.rescale_phi,
                    gather_per_step=gather,
                    sequential_guidance=sm.guidance_passes == "sequential",
                    unguided=ug,
                ),
            )
        )
    for name in ("keyframe_start", "video_start", "interp_start"):
        if name in fns:
            fns[name] = jax.jit(lambda *a, f=fns[name]: (lambda cb, st, k: (cb, pin(mesh, st), k))(*f(*a)))
    return fns
