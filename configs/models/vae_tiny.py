"""Tiny KL autoencoder for CPU tests: 2 levels (2x downsampling), 16/32 channels, 4 latent channels."""

import ml_collections


def get_config(arg=None):
    """`arg` = latent channels (default 4), e.g. `vae_tiny.py:8` for an Emu-like 8-channel latent."""
    return ml_collections.ConfigDict(
        dict(
            in_channels=3,
            out_channels=3,
            latent_channels=int(arg or 4),
            block_out_channels=(16, 32),
            layers_per_block=1,
            norm_num_groups=8,
            norm_eps=1e-6,
            mid_block_add_attention=True,
            use_quant_conv=True,
            use_post_quant_conv=True,
            scaling_factor=1.0,
            shift_factor=0.0,
            dtype="float32",
        )
    )
