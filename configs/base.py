"""Defaults shared by every experiment config: diffusion, training, sampling, mesh.

Experiment files (tiny.py, emu_video.py) start from `get_config()` here and
set the model and data sections. Values follow SPEC.md where it gives them.
"""

import ml_collections

from emu_jax.sampling.settings import Settings


def get_config(arg=None):
    del arg
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.model = ml_collections.ConfigDict()  # EmuConfig dict: unet, vae, text_encoders, resolution, num_frames, fps
    c.data = ml_collections.ConfigDict()  # emu_jax.data.pipeline.make_loader fields

    c.diffusion = ml_collections.ConfigDict(
        dict(
            beta_schedule="scaled_linear",  # SPEC's "quad": sqrt-linear 8.5e-4 .. 1.2e-2
            num_train_steps=1000,
            beta_start=0.00085,
            beta_end=0.012,
            zero_terminal_snr=True,
            prediction="v",
        )
    )  # stage 2 / HQ / interpolation (SPEC)

    c.train = ml_collections.ConfigDict(
        dict(
            task="t2v",  # 't2i' keyframe model | 't2v' model F | 'interp' model I | 'vae' autoencoder
            trainable="temporal",  # 'temporal' (F, I) | 'spatial' (T2I) | 'all'
            train_text=False,  # also train the text encoders (the demo learns its own)
            steps=1000,
            batch_size=8,
            log_every=50,
            save_every=500,
            keep=3,
            async_save=True,
            microbatches=1,  # gradient accumulation: each data shard's batch in N slices, one update
            ema_decay=0.0,
            loss_weighting="uniform",
            min_snr_gamma=5.0,
            drop_text=0.05,
            drop_image=0.05,
            drop_both=0.05,  # ours; SPEC leaves them open
            aug_max_level=250,  # interpolation: conditioning noise level ~ U[0, 250]
            init_from="",  # emu_jax checkpoint or training workdir to start from
            init_from_groups="",  # only these top-level param groups of it, comma-separated (vae,text); "" = all
            slots=ml_collections.ConfigDict(dict(num_given=8, factor=4, pad=4)),
            optimizer=ml_collections.ConfigDict(
                dict(
                    lr=1e-4,
                    warmup_steps=1000,
                    b1=0.9,
                    b2=0.999,
                    eps=1e-8,
                    weight_decay=0.0,
                    grad_clip=1.0,
                    decay="constant",
                    end_lr_ratio=0.1,
                )
            ),  # 'cosine': decay to end_lr_ratio * lr at train.steps
        )
    )

    # The recipe's sampling defaults live once, in emu_jax.sampling.settings.Settings.
    c.sampling = ml_collections.ConfigDict(Settings().to_dict())

    c.mesh = ml_collections.ConfigDict(
        dict(
            shape=ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1)),
            logical_axis_rules=ml_collections.config_dict.placeholder(list),
        )
    )  # None = sharding.DEFAULT_RULES
    return c
