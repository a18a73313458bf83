"""Emu Video model F (SPEC "Model F"): 8-ch latents, 384 ch, mult 1-2-4-4, res blocks 3-4-4-4,
head dim 64, 2 transformer layers (layer 1 -> CLIP 768-d, layer 2 -> T5-XL 2048-d),
9 conditioning channels (8 image latent + 1 mask). Temporal attention blocks have 2 layers,
mirroring the spatial ones (ours: the paper gives no layout); this gives 2.66B spatial +
1.37B temporal = 4.03B params vs the paper's 2.7B + 1.7B = 4.3B.

`get_config("interp")` gives the interpolation model I: same shapes, plus the
conditioning noise-level embedding (SPEC "the augmentation level is passed").
"""

import ml_collections


def get_config(arg=None):
    cfg = ml_collections.ConfigDict(
        dict(
            in_channels=8,
            cond_channels=9,
            out_channels=8,
            model_channels=384,
            channel_mult=(1, 2, 4, 4),
            num_res_blocks=(3, 4, 4, 4),
            attention_resolutions=(1, 2, 4),
            num_heads=None,
            head_dim=64,
            transformer_layers=2,
            context_dims=(768, 2048),
            use_linear_projection=True,
            norm_groups=32,
            norm_eps=1e-5,
            flip_sin_to_cos=True,
            freq_shift=0.0,
            temporal=True,
            temporal_kernel=3,
            temporal_layers=2,
            cond_level_embed=False,
            dtype="bfloat16",
            attention_impl="auto",
            remat="save_dots",
            upcast_attention=False,
        )
    )
    if arg not in (None, "", "interp"):
        raise ValueError(f"unet_emu_video config arg {arg!r} not in (None, 'interp')")
    if arg == "interp":
        cfg.cond_level_embed = True
    return cfg
