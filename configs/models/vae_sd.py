"""Stable Diffusion 1.x KL autoencoder: 4 latent channels, 8x downsampling, latents scaled by 0.18215."""

import ml_collections


def get_config(arg=None):
    del arg
    return ml_collections.ConfigDict(
        dict(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            norm_num_groups=32,
            norm_eps=1e-6,
            mid_block_add_attention=True,
            use_quant_conv=True,
            use_post_quant_conv=True,
            scaling_factor=0.18215,
            shift_factor=0.0,
            dtype="float32",
        )
    )
