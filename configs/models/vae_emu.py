"""Emu Video's KL autoencoder (SPEC): z = 8 channels, base 128, multipliers (1, 2, 4, 4), 2 res blocks.

The paper gives no latent scale; 1.0 is a placeholder (ours) to be replaced by
1 / std of encoded training latents, as SD did to get 0.18215.
"""

import ml_collections


def get_config(arg=None):
    del arg
    base, mult = 128, (1, 2, 4, 4)
    return ml_collections.ConfigDict(
        dict(
            in_channels=3,
            out_channels=3,
            latent_channels=8,
            block_out_channels=tuple(base * m for m in mult),
            layers_per_block=2,
            norm_num_groups=32,
            norm_eps=1e-6,
            mid_block_add_attention=True,
            use_quant_conv=True,
            use_post_quant_conv=True,
            scaling_factor=1.0,
            shift_factor=0.0,
            dtype="float32",
        )
    )
