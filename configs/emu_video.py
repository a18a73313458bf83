"""The paper's training recipe for the 4.3B Emu Video model (SPEC "Training recipe").

`--config configs/emu_video.py:STAGE` with STAGE one of
- `stage1`: 256 px, 8 frames at 8 fps (1 s clips), batch 512, eps-prediction on
  the standard schedule, 70K steps at lr 1e-4, spatial layers from a converted
  text-to-image checkpoint;
- `stage2` (default): 512 px, 8 frames at 4 fps (2 s clips), batch 512,
  v-prediction with zero terminal SNR, 15K steps, initialised from stage 1;
- `hq`: the high-motion fine-tune on the `emu-video data select-hq` subset,
  batch 64, lr 2.5e-5, initialised from stage 2;
- `interp`: interpolation model I, 8 frames at 4 fps -> 37 at 16 fps, batch
  384, lr 1.5e-4, temporal layers trained, initialised from F (the HQ model),
  with the conditioning noise-level embedding.

Model: SPEC's U-Net F (configs/models/unet_emu_video.py), the Emu VAE (z = 8),
CLIP ViT-L text (768-d) + T5-XL encoder (2048-d), 77 tokens each.

Mesh: `data=1, fsdp=-1, tensor=1` by default, i.e. every chip is an FSDP
shard: the 4.3B U-Net, the 1.2B T5-XL and the optimiser state of the 1.4B
trainable temporal params are spread over the slice (on v5p-128 that is
~0.8 GB of state per chip) and the batch is split over the same chips. On
slices much larger than the batch, use `--config.mesh.shape.data=N` so that
`fsdp` stays at 16-64 chips and all-gathers stay inside a pod.

Remat: `model.unet.remat = 'full'` (each U-Net block recomputes its
activations in the backward pass). 'save_dots' keeps every matmul output,
including the spatial attention scores (4096 x 4096 per head and frame at a
64x64 latent): `emu-video aot` measured 299 GiB of temporaries per v5p chip
at 4 clips per chip, so it does not fit (docs/aot.md). Full remat at the
paper's 8 clips per v5p chip needs 108 GiB of temporaries (95.7 GiB HBM):
the knobs for v5p-128 are `--config.train.microbatches=2` (gradient
accumulation, same update; activations of 4 clips at a time) and
`--config.model.unet.remat_scope=layer` (one attention / MLP rebuilt at a
time in the backward), not yet compiled at this size (docs/aot.md);
`train.microbatches` stays 1 here so larger slices do not pay for it.

Paths (`train.init_from`, `data.data_dir`, `data.subset_file`) are
placeholders under workdir/; set them with `--config.train.init_from=...`.
Step counts, warm-up and the HQ / interpolation step counts marked "ours"
are not given by the paper.
"""

import ml_collections

from emu_jax.config import load_config

STAGES = ("stage1", "stage2", "hq", "interp")


def model(resolution: int, fps: int, interp: bool = False) -> ml_collections.ConfigDict:
    """EmuConfig dict: U-Net F (or I), Emu VAE, CLIP-L + T5-XL."""
    return ml_collections.ConfigDict(
        dict(
            unet=load_config("models/unet_emu_video.py" + (":interp" if interp else "")),
            vae=load_config("models/vae_emu.py"),
            text_encoders=[
                load_config("models/text_clip_l.py").to_dict(),
                load_config("models/text_t5_xl.py").to_dict(),
            ],
            resolution=resolution,
            num_frames=8,
            fps=fps,
        )
    )


def get_config(arg=None):
    stage = arg or "stage2"
    if stage not in STAGES:
        raise ValueError(f"configs/emu_video.py takes one of {STAGES}, got {stage!r}")
    c = load_config("base.py")
    c.mesh.shape.data, c.mesh.shape.fsdp, c.mesh.shape.tensor = 1, -1, 1
    t, opt = c.train, c.train.optimizer
    t.task, t.trainable = "t2v", "temporal"
    t.log_every, t.save_every, t.keep = 50, 1000, 3
    opt.warmup_steps = 1000  # ours

    if stage == "stage1":
        c.model = model(256, 8)
        c.data = load_config("data/video_folder.py:256")
        c.diffusion.prediction, c.diffusion.zero_terminal_snr = "eps", False
        t.batch_size, t.steps, opt.lr = 512, 70_000, 1e-4
        t.init_from = "workdir/emu_video/t2i"  # a converted text-to-image checkpoint (spatial layers)
    else:
        c.model = model(512, 4, interp=stage == "interp")
        c.data = load_config("data/video_folder.py:512")
        c.diffusion.prediction, c.diffusion.zero_terminal_snr = "v", True
    if stage == "stage2":
        t.batch_size, t.steps, opt.lr = 512, 15_000, 1e-4
        t.init_from = "workdir/emu_video/stage1"
    elif stage == "hq":
        t.batch_size, t.steps, opt.lr = 64, 1_000, 2.5e-5  # steps: ours ("short"; ~40 epochs of 1.6K videos)
        opt.warmup_steps = 100  # ours
        t.init_from = "workdir/emu_video/stage2"
        c.data.subset_file = "workdir/emu_video/hq_subset.json"  # `emu-video data select-hq` output
    elif stage == "interp":
        t.task = "interp"
        t.batch_size, t.steps, opt.lr = 384, 20_000, 1.5e-4  # steps: ours
        t.init_from = "workdir/emu_video/hq"  # model F
        t.slots = ml_collections.ConfigDict(dict(num_given=8, factor=4, pad=4))  # 37 slots
        c.data.num_frames, c.data.fps, c.data.min_clip_seconds = 37, 16.0, 2.5
        c.model.fps = 16
    c.model.unet.remat = "full"  # save_dots keeps the attention scores: out of HBM (docs/aot.md)
    c.data.data_dir = "workdir/emu_video/data"
    c.data.text_max_length = 77
    return c
