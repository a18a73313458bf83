"""Analytic model FLOPs of sampling one video with the paper's models, and chip-seconds at a given MFU.

No compile, no weights (abstract params only), seconds on a CPU:

    JAX_PLATFORMS=cpu python benchmarks/sample_flops.py [--steps 250] [--mfu 0.4]

Per stage, as `emu-video aot --program sample` counts model FLOPs (emu_jax.models.flops): U-Net
forward x steps x guidance passes, the text encoders on the prompt and the empty prompt, the VAE
decoder on keyframe + video + interpolated frames (1 + 8 + 37 at 512 px).
"""

import argparse

import jax
from flax.core import meta

from emu_jax.config import load_config
from emu_jax.models import flops
from emu_jax.models.emu import EmuConfig, EmuModel
from emu_jax.training.aot_sample import text_flops
from emu_jax.training.tpu_topology import GENERATIONS


def model(spec: str) -> EmuModel:
    c = load_config(spec)
    for te in c.model.text_encoders:
        te["tokenizer"] = "byte"  # shapes only
    return EmuModel(EmuConfig.from_dict(c.model.to_dict()))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--mfu", type=float, default=0.4)
    a = p.parse_args()
    f, i = model("configs/emu_video.py:stage2"), model("configs/emu_video.py:interp")
    s, n, L = f.config.latent_size, a.steps, f.config.text[0].max_length
    slots = 37  # configs/emu_video.py:interp's layout: 8 given frames -> 37
    stages = {
        "keyframe": flops.sample_stage_flops(f.config.unet, 1, 1, s, s, L, n, "text", image_mode=True)["total"]
        + text_flops(f, 1),
        "video": flops.sample_stage_flops(f.config.unet, 1, f.config.num_frames, s, s, L, n, "two_condition")["total"]
        + text_flops(f, 1),
        "interp": flops.sample_stage_flops(i.config.unet, 1, slots, s, s, L, n, "two_condition")["total"]
        + text_flops(i, 1),
        "decode": flops.vae_decode_flops(f.config.vae, 1 + f.config.num_frames + slots, s, s)["total"],
    }
    stages["whole video"] = sum(stages.values())
    chips = ("v5p", "v5e", "v6e")
    print("| stage | model FLOP / video | " + " | ".join(f"{c} chip-s at {100 * a.mfu:.0f}% MFU" for c in chips) + " |")
    print("|---|---|" + "---|" * len(chips))
    for k, v in stages.items():
        secs = [v / (a.mfu * GENERATIONS[c].peak_tflops_bf16 * 1e12) for c in chips]
        print(f"| {k} | {v:.3g} | " + " | ".join(f"{x:.1f}" for x in secs) + " |")
    w = stages["whole video"]
    hours = ", ".join(f"{c} {1e4 * w / (a.mfu * GENERATIONS[c].peak_tflops_bf16 * 1e12) / 3600:.0f}" for c in chips)
    print(f"chip-hours per 10,000 videos at {100 * a.mfu:.0f}% MFU: {hours}")
    for name, m in (("F", f), ("I", i)):
        leaves = jax.tree.leaves(meta.unbox(m.abstract_params()))
        print(
            f"model {name}: {sum(x.size for x in leaves) / 1e9:.2f}B params, "
            f"{sum(x.size * x.dtype.itemsize for x in leaves) / 2**30:.1f} GiB as initialised"
        )


if __name__ == "__main__":
    main()
