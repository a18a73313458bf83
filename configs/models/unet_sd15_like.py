"""SD 1.5-shaped U-Net (320 ch, mult 1-2-4-4, 2 res blocks, 8 heads, CLIP 768) with temporal layers.

Matches a diffusers SD 1.5 `unet/` checkpoint, plus a 5-channel conditioning
input (4 image latent + 1 mask) for image-conditioned video.
"""

import ml_collections


def get_config(arg=None):
    del arg
    return ml_collections.ConfigDict(
        dict(
            in_channels=4,
            cond_channels=5,
            out_channels=4,
            model_channels=320,
            channel_mult=(1, 2, 4, 4),
            num_res_blocks=2,
            attention_resolutions=(1, 2, 4),
            num_heads=8,
            head_dim=None,
            transformer_layers=1,
            context_dims=(768,),
            use_linear_projection=False,
            norm_groups=32,
            norm_eps=1e-5,
            flip_sin_to_cos=True,
            freq_shift=0.0,
            temporal=True,
            temporal_kernel=3,
            temporal_layers=1,
            cond_level_embed=False,
            dtype="bfloat16",
            attention_impl="auto",
            remat="save_dots",
            upcast_attention=False,
        )
    )
