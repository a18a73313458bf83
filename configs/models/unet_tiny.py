"""Tiny U-Net for CPU tests and smoke runs: 2 levels, 32 channels, one 32-d text context."""

import ml_collections


def get_config(arg=None):
    del arg
    return ml_collections.ConfigDict(
        dict(
            in_channels=4,
            cond_channels=5,
            out_channels=4,
            model_channels=32,
            channel_mult=(1, 2),
            num_res_blocks=1,
            attention_resolutions=(1, 2),
            num_heads=None,
            head_dim=8,
            transformer_layers=1,
            context_dims=(32,),
            use_linear_projection=False,
            norm_groups=8,
            norm_eps=1e-5,
            flip_sin_to_cos=True,
            freq_shift=0.0,
            temporal=True,
            temporal_kernel=3,
            temporal_layers=1,
            cond_level_embed=False,
            dtype="float32",
            attention_impl="auto",
            remat="none",
            upcast_attention=False,
        )
    )
