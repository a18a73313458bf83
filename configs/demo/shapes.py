"""The moving-shapes demo recipe: its sub-stages as a table (RECIPE), one config per sub-stage, two sizes.

`get_config("NAME[,SIZE]")`: NAME a sub-stage of RECIPE (e.g. t2v_s3) or a
stage vae | t2i | t2v | interp (its first sub-stage), SIZE default | tiny
(tests: 2 steps per sub-stage, a batch of clips per dataset);
`get_config("recipe")` is the table's order for emu_jax/demo/recipe.py. The
main dataset is rendered at the interpolation frame rate (16 fps, 40 frames),
so F's 8 frames at 4 fps and I's 37 slots at 16 fps are both clips of it; the
direction curriculum adds datasets of the same clips with restricted looks
(`datasets`). The recipe (`emu-video demo train`) fills in `data.data_dir`,
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


# Every curriculum dataset: free starts (the first frame does not give the direction away), one speed and
# one size (only the direction word varies the motion), 64 test clips (docs/demo.md, "The direction curriculum").
CURRICULUM_DATA = dict(start="free", speed_range=(0.4, 0.4), size_range=(0.3, 0.3), num_test=64)


def datasets(size: str) -> dict:
    """Build arguments of every dataset the recipe renders, keyed by its folder in the workdir."""
    base = dataset(size).to_dict()
    cur = {**base, **CURRICULUM_DATA}
    out = {
        "data": base,
        "data_s1": {**cur, "start": "centre", "look": ("red", "circle", "black"), "num_train": 512},
        "data_s3": {**cur, "look": ("red", "circle", "black"), "num_train": 512},
        "data_s6": {**cur, "look": ("any", "circle", "black"), "num_train": 1024},
        "data_s7": {**cur, "look": ("any", "any", "black"), "num_train": 2048},
        "data_s8": {**cur, "num_train": 4096, "num_test": 256},
    }
    if size == "tiny":  # same looks and starts, a batch of clips each
        out.update({k: {**v, "num_train": 8, "num_test": 4} for k, v in out.items() if k != "data"})
    return out


BATCH = {"default": {"vae": 16, "t2i": 32, "t2v": 8, "interp": 4}, "tiny": dict.fromkeys(STAGES, 8)}

# The recipe, in order: one row per sub-stage, each an ordinary training run in WORKDIR/NAME (a new LR
# schedule: cosine to 10%, the VAE constant) started from WORKDIR/INIT_FROM and reading WORKDIR/DATA.
# These are the runs that made the shipped model, with their measured seconds in docs/demo.md ("The recipe").
# Size tiny: the same rows, 2 steps each, no warmup.
#   (NAME, STAGE, DATA, STEPS, LR, WARMUP, INIT_FROM, extra config)
RECIPE = (
    ("vae", "vae", "data", 2500, 1e-3, 50, None, {}),
    ("t2i_1", "t2i", "data", 1500, 1e-3, 100, "vae", {}),
    # The keyframe F starts from is a first frame: T2I sees first frames of F's 8-frame clips.
    ("t2i_2", "t2i", "data", 500, 1e-3, 100, "t2i_1", {"data.num_frames": 8, "data.fps": 4.0, "data.keep_frames": 1}),
    ("t2i_3", "t2i", "data", 1000, 5e-4, 20, "t2i_2", {}),
    ("t2v_0", "t2v", "data", 400, 1e-3, 20, "t2i_3", {}),
    # The direction curriculum: the word on one look first, then the looks widened one attribute at a time,
    # then long training on every look (direction stayed at chance when F saw every look from the start).
    ("t2v_s1", "t2v", "data_s1", 400, 1e-3, 20, "t2v_0", {}),
    ("t2v_s1b", "t2v", "data_s1", 200, 1e-3, 20, "t2v_s1", {}),
    ("t2v_s3", "t2v", "data_s3", 400, 1e-3, 20, "t2v_s1b", {}),
    ("t2v_s6", "t2v", "data_s6", 400, 1e-3, 20, "t2v_s3", {}),
    ("t2v_s7", "t2v", "data_s7", 300, 1e-3, 20, "t2v_s6", {}),
    ("t2v_s8", "t2v", "data_s8", 300, 1e-3, 20, "t2v_s7", {}),
    ("t2v_s9", "t2v", "data_s8", 800, 1e-3, 20, "t2v_s8", {}),
    ("t2v_s10", "t2v", "data_s8", 1100, 1e-3, 20, "t2v_s9", {}),
    # One more LR cycle on every look: direction 0.833 -> 0.896 on the same 96 held-out items (docs/demo.md).
    ("t2v_s11", "t2v", "data_s8", 300, 1e-3, 20, "t2v_s10", {}),
    # 800 more at half the LR keeping an EMA of the weights (decay 0.998, what I's interp_3 did): on 200 held-out
    # prompts F's direction 0.88 -> 0.92, all four 0.83 -> 0.86, consistency 0.89 -> 0.94 (docs/demo.md).
    ("t2v_s12", "t2v", "data_s8", 800, 5e-4, 20, "t2v_s11", {"train.ema_decay": 0.998}),
    # I from F (t2v_s10, the F the shipped I was trained from) on F's own data (the paper's choice): 300 steps;
    # the older I (100 steps from F before the curriculum, on `data`) made 10 of 16 held-out 16 fps videos jump
    # where F's did not, this one 1.
    ("interp", "interp", "data_s8", 300, 1e-3, 10, "t2v_s10", {}),
    # 800 more steps with EMA weights (decay 0.995): on 200 held-out prompts the 16 fps videos that jump where
    # F's do not fell 44 -> 28 with F at w_p 3 (docs/demo.md, "Interpolation").
    ("interp_2", "interp", "data_s8", 800, 1e-3, 10, "interp", {"train.ema_decay": 0.995}),
    # 800 more at half the LR with a slower EMA (decay 0.998), as loss was still falling at interp_2's end: jumps
    # where F has none 28 -> 20, 16 fps consistency 0.845 -> 0.880 (docs/demo.md, "Interpolation").
    ("interp_3", "interp", "data_s8", 800, 5e-4, 10, "interp_2", {"train.ema_decay": 0.998}),
    # 800 more of the same (from interp_3's EMA weights): 16 fps videos that jump where F's do not 26 -> 20 and
    # consistency 0.880 -> 0.895 with t2v_s12's F (docs/demo.md, "Interpolation").
    ("interp_4", "interp", "data_s8", 800, 5e-4, 10, "interp_3", {"train.ema_decay": 0.998}),
)
NAMES = tuple(r[0] for r in RECIPE)


def recipe_row(name: str, size: str) -> dict:
    """One sub-stage of RECIPE at `size`; a STAGE name gives its first sub-stage (the stage's base config)."""
    rows = [r for r in RECIPE if r[0] == name] or [r for r in RECIPE if r[1] == name][:1]
    if not rows or size not in SIZES:
        raise ValueError(f"configs/demo/shapes.py: {name!r},{size!r} is not one of {STAGES + NAMES} x {SIZES}")
    name, stage, data, steps, lr, warmup, init_from, extra = rows[0]
    if size == "tiny":
        steps, warmup = 2, 0
    return dict(name=name, stage=stage, data=data, steps=steps, lr=lr, warmup=warmup, init_from=init_from, extra=extra)


def get_config(arg=None):
    parts = (arg or "t2v").split(",")
    name, size = parts[0], (parts[1] if len(parts) > 1 else "default")
    if name == "recipe":  # the table itself, for emu_jax/demo/recipe.py
        rows = {n: {k: recipe_row(n, size)[k] for k in ("stage", "data", "init_from")} for n in NAMES}
        return ml_collections.ConfigDict(dict(order=NAMES, rows=rows, datasets=datasets(size)))
    if (name not in STAGES and name not in NAMES) or size not in SIZES:
        raise ValueError(
            f"configs/demo/shapes.py takes NAME[,SIZE] with NAME a stage {STAGES} or a sub-stage {NAMES} "
            f"and SIZE in {SIZES}, got {arg!r}"
        )
    row = recipe_row(name, size)
    stage = row["stage"]
    c = load_config("base.py")
    c.model = model(size)
    # Build parameters of the moving_shapes dataset this sub-stage reads (folder `row["data"]` of the workdir).
    c.dataset = ml_collections.ConfigDict(datasets(size)[row["data"]])
    c.data = load_config("demo/moving_shapes_tiny.py")
    c.data.resolution = c.model.resolution
    c.data.text_max_length = TEXT_MAX_LENGTH
    steps, batch, lr, warmup = row["steps"], BATCH[size][stage], row["lr"], row["warmup"]
    c.train.task = stage
    c.train.steps, c.train.batch_size = steps, batch
    c.train.log_every = max(1, min(50, steps))
    c.train.save_every = max(1, min(250, steps))
    c.train.keep = 2
    c.train.optimizer.lr, c.train.optimizer.warmup_steps = lr, warmup
    c.train.optimizer.decay = "constant" if stage == "vae" or steps <= warmup else "cosine"
    c.train.slots = slots(size)
    c.sampling.num_steps = 25 if size == "default" else 2
    # F's video text guidance w_p 3: w_p 4's direction, more consistent (docs/demo.md, shipped numbers).
    c.sampling.guidance_keyframe, c.sampling.guidance_text, c.sampling.guidance_image = 4.0, 3.0, 2.0
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
        if size == "default":
            # I is heavily conditioned: 10 steps scored as 25 did on 32 held-out prompts (direction, all four,
            # consistency equal; jumps 4 vs 3) at 40% of the cost (docs/demo.md, "Interpolation").
            c.sampling.num_steps = 10
        # I unguided (w_i = w_p = 1: one forward per step, a third of the work): on 64 held-out prompts as good as
        # w_i 2 / w_p 4 on every measure, jumps 9 vs 14 (docs/demo.md, "Interpolation").
        c.sampling.guidance_image = c.sampling.guidance_text = 1.0
    c.update_from_flattened_dict(row["extra"])  # the row's own settings come last
    return c
