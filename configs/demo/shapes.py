"""The moving-shapes demo recipe: one config per stage, two sizes.

`get_config("STAGE[,SIZE]")`, STAGE in vae | t2i | t2v | interp, SIZE in
default | tiny (tests). All stages read one moving-shapes dataset rendered at
the interpolation frame rate (16 fps, 40 frames), so F's 8 frames at 4 fps and
I's 37 slots at 16 fps are both clips of it. The recipe
(`emu-video demo train`, emu_jax/demo/recipe.py) fills in `data.data_dir`,
`train.init_from` and the VAE's measured latent scale.
"""

import ml_collections

from emu_jax.config import load_config
from emu_jax.demo import shapes
from emu_jax.models.tokenizers import load_tokenizer

STAGES = ("vae", "t2i", "t2v", "interp")
SIZES = ("default", "tiny")


TEXT_MAX_LENGTH = 16  # captions are 10 words, + BOS / EOS


def text_encoder(hidden: int, layers: int, heads: int) -> dict:
    """A CLIP-style encoder over the demo's word tokenizer (one id per caption word)."""
    vocab = load_tokenizer(shapes.tokenizer_dir())
    return dict(
        kind="clip",
        max_length=TEXT_MAX_LENGTH,
        tokenizer=shapes.tokenizer_dir(),
        config=dict(
            vocab_size=vocab.vocab_size,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            max_position_embeddings=TEXT_MAX_LENGTH,
            eos_token_id=vocab.eos_id,
        ),
    )


def model(size: str) -> ml_collections.ConfigDict:
    """32 px frames, VAE 2x down to 16x16x4 latents (the shapes stay 4-6 latent pixels wide), word-level
    CLIP-style text."""
    if size == "tiny":
        return ml_collections.ConfigDict(
            dict(
                unet=dict(
                    in_channels=4,
                    cond_channels=5,
                    out_channels=4,
                    model_channels=16,
                    channel_mult=(1, 2),
                    num_res_blocks=1,
                    attention_resolutions=(2,),
                    num_heads=None,
                    head_dim=16,
                    transformer_layers=1,
                    context_dims=(16,),
                    norm_groups=8,
                    temporal=True,
                    cond_level_embed=False,
                ),
                vae=dict(
                    latent_channels=4,
                    block_out_channels=(8, 16),
                    layers_per_block=1,
                    norm_num_groups=8,
                    scaling_factor=1.0,
                ),
                text_encoders=[text_encoder(hidden=16, layers=1, heads=2)],
                resolution=16,
                num_frames=4,
                fps=4,
            )
        )
    return ml_collections.ConfigDict(
        dict(
            unet=dict(
                in_channels=4,
                cond_channels=5,
                out_channels=4,
                model_channels=64,
                channel_mult=(1, 2),
                num_res_blocks=1,
                attention_resolutions=(1, 2),
                num_heads=None,
                head_dim=32,
                transformer_layers=1,
                context_dims=(64,),
                norm_groups=16,
                temporal=True,
                cond_level_embed=False,
            ),
            vae=dict(
                latent_channels=4,
                block_out_channels=(32, 64),
                layers_per_block=1,
                norm_num_groups=16,
                scaling_factor=1.0,
            ),
            text_encoders=[text_encoder(hidden=64, layers=2, heads=4)],
            resolution=32,
            num_frames=8,
            fps=4,
        )
    )


def slots(size: str) -> ml_collections.ConfigDict:
    """Interpolation layout: SPEC's 8 -> 37 (factor 4, pad 4) by default; 4 -> 9 for tiny."""
    if size == "tiny":
        return ml_collections.ConfigDict(dict(num_given=4, factor=2, pad=1))
    return ml_collections.ConfigDict(dict(num_given=8, factor=4, pad=4))


def dataset(size: str) -> ml_collections.ConfigDict:
    """How `MovingShapes` is built: at I's frame rate, long enough for I's slots (and F's span)."""
    s, m = slots(size), model(size)
    num_slots = s.pad * 2 + s.factor * (s.num_given - 1) + 1
    fps = float(m.fps * s.factor)
    if size == "tiny":
        return ml_collections.ConfigDict(
            dict(resolution=m.resolution, num_frames=num_slots + 1, fps=fps, num_train=16, num_test=8, seed=0)
        )
    return ml_collections.ConfigDict(
        dict(resolution=m.resolution, num_frames=num_slots + 3, fps=fps, num_train=4096, num_test=256, seed=0)
    )


# (steps, batch, lr, warmup) per stage and size. Default: with T2I at 1800 steps the recipe measured 95 min
# (about 92 idle); with T2I at 1500 steps the whole recipe measured 88 min on 2 idle cores (docs/demo.md).
# The VAE keeps a constant LR; the diffusion stages decay it with a cosine to 10%.
SCHEDULE = {
    "default": {
        "vae": (2500, 16, 1e-3, 50),
        "t2i": (1500, 32, 1e-3, 100),
        "t2v": (400, 8, 1e-3, 20),
        "interp": (100, 4, 1e-3, 10),
    },
    "tiny": {"vae": (2, 8, 1e-3, 0), "t2i": (2, 8, 1e-3, 0), "t2v": (2, 8, 1e-3, 0), "interp": (2, 8, 1e-3, 0)},
}


def get_config(arg=None):
    parts = (arg or "t2v").split(",")
    stage, size = parts[0], (parts[1] if len(parts) > 1 else "default")
    if stage not in STAGES or size not in SIZES:
        raise ValueError(
            f"configs/demo/shapes.py takes STAGE[,SIZE] with STAGE in {STAGES} and SIZE in {SIZES}, got {arg!r}"
        )
    c = load_config("base.py")
    c.model = model(size)
    c.dataset = dataset(size)  # build parameters of the recipe's moving_shapes dataset
    c.data = load_config("data/moving_shapes_tiny.py")
    c.data.resolution = c.model.resolution
    c.data.text_max_length = TEXT_MAX_LENGTH
    steps, batch, lr, warmup = SCHEDULE[size][stage]
    c.train.task = {"vae": "vae", "t2i": "t2i", "t2v": "t2v", "interp": "interp"}[stage]
    c.train.steps, c.train.batch_size = steps, batch
    c.train.log_every = max(1, min(50, steps))
    c.train.save_every = max(1, min(250, steps))
    c.train.keep = 2
    c.train.optimizer.lr, c.train.optimizer.warmup_steps = lr, warmup
    c.train.optimizer.decay = "constant" if stage == "vae" or steps <= warmup else "cosine"
    c.train.slots = slots(size)
    c.sampling.num_steps = 25 if size == "default" else 2
    c.sampling.guidance_keyframe, c.sampling.guidance_text, c.sampling.guidance_image = 4.0, 4.0, 2.0
    if stage == "vae":
        c.data.num_frames, c.data.fps = 1, None  # single random frames
        c.train.kl_weight = 1e-6  # small: latents stay informative, scale is fixed after training
        c.train.loss = "l1+l2"  # pixel reconstruction only (no GAN / LPIPS at this scale)
    elif stage == "t2i":
        c.data.num_frames, c.data.fps = 1, None  # one random frame per clip (a text-to-image example)
        # The text encoder stays frozen at its random init, as Emu keeps T5 / CLIP frozen: trained on
        # single frames it erased the direction words that F needs (docs/demo.md, "What is known not to work").
        c.train.trainable, c.train.train_text = "spatial", False
        c.diffusion.zero_terminal_snr, c.diffusion.prediction = True, "v"
        # v's target, weighted as eps-prediction's loss: same steps, keyframe shape 0.695 -> 0.84, colour
        # 0.89 -> 0.93, black / white background error 5.8 / 4.4 -> 2.1 / 1.7 (docs/demo.md, "Ablations").
        c.train.loss_weighting = "eps_mse"
    elif stage == "t2v":
        c.data.num_frames, c.data.fps = c.model.num_frames, float(c.model.fps)
        c.train.trainable = "temporal"
        # Motion words must reach the temporal layers: with frozen spatial layers alone, direction stayed
        # at chance in the GPU ablation run (docs/demo.md). The new cross-attention starts at zero.
        c.model.unet.temporal_cross_attention = True
    else:
        c.model.unet.cond_level_embed = True
        c.model.unet.temporal_cross_attention = True
        s = c.train.slots
        c.data.num_frames = s.pad * 2 + s.factor * (s.num_given - 1) + 1
        c.data.fps = float(c.model.fps * s.factor)
        c.train.trainable = "temporal"
    return c
