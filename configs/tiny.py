"""Tiny CPU config: the whole recipe on 32x32 moving shapes in seconds per step.

`--config configs/tiny.py:t2v` (default) trains model F's temporal layers;
`:t2i` the keyframe (text-to-image) model; `:interp` the interpolation model I.
Used by the tests and as the starting point of the demo configs. It reads the demo's
moving-shapes data (configs/demo/moving_shapes_tiny.py) because that is the one dataset that
builds from nothing on any machine; point `data` at configs/data/video_folder.py for real videos.
"""

import ml_collections

from emu_jax.config import load_config


def model():
    """A 32 px, 4-latent-channel, 2-level model with one byte-level CLIP-style encoder."""
    return ml_collections.ConfigDict(
        dict(
            unet=dict(
                in_channels=4,
                cond_channels=5,
                out_channels=4,
                model_channels=32,
                channel_mult=(1, 2),
                num_res_blocks=1,
                attention_resolutions=(2,),
                num_heads=None,
                head_dim=16,
                transformer_layers=1,
                context_dims=(32,),
                norm_groups=8,
                temporal=True,
                cond_level_embed=False,
            ),
            vae=dict(
                latent_channels=4,
                block_out_channels=(16, 32),
                layers_per_block=1,
                norm_num_groups=8,
                scaling_factor=1.0,
            ),
            text_encoders=[
                dict(
                    kind="clip",
                    max_length=64,
                    tokenizer="byte",
                    config=dict(
                        vocab_size=259,
                        hidden_size=32,
                        intermediate_size=64,
                        num_hidden_layers=1,
                        num_attention_heads=2,
                        max_position_embeddings=64,
                        eos_token_id=258,
                    ),
                )
            ],
            resolution=32,
            num_frames=8,
            fps=8,
        )
    )


def get_config(arg=None):
    task = arg or "t2v"
    c = load_config("base.py")
    c.model = model()
    c.data = load_config("demo/moving_shapes_tiny.py")
    c.data.text_max_length = 64
    c.train.task = task
    c.train.steps, c.train.batch_size = 20, 4
    c.train.log_every, c.train.save_every = 5, 10
    c.train.optimizer.lr, c.train.optimizer.warmup_steps = 1e-3, 5
    c.sampling.num_steps = 10
    if task == "t2i":
        c.train.trainable, c.train.train_text = "spatial", True
        c.model.unet.temporal = True  # kept (identity) so F can start from this checkpoint
    elif task == "interp":
        c.model.unet.cond_level_embed = True
        c.train.slots = ml_collections.ConfigDict(dict(num_given=4, factor=2, pad=1))  # 9 slots
        c.data.num_frames = 9
        c.data.fps = 16.0
    elif task != "t2v":
        raise ValueError(f"configs/tiny.py takes t2i, t2v or interp, got {task!r}")
    return c
