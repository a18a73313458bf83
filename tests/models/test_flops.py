"""Analytic U-Net FLOPs against a count written out by hand.

(XLA's cost analysis is no reference at test sizes: it counts only the in-bounds taps of padded
convs, which at 4x4 latents is a third fewer; the AOT report compares at full size.)"""

from emu_jax.models import flops
from emu_jax.models.unet_config import UNetConfig

# One level (no resampling), 32 channels, 2 heads of 16, one transformer layer; spatial
# attention in the down, mid and up blocks; temporal layers after each.
CFG = UNetConfig(
    in_channels=4,
    cond_channels=5,
    out_channels=4,
    model_channels=32,
    channel_mult=(1,),
    num_res_blocks=1,
    attention_resolutions=(1,),
    num_heads=None,
    head_dim=16,
    transformer_layers=1,
    context_dims=(24,),
    norm_groups=8,
    temporal=True,
    temporal_layers=1,
)
B, T, H, W, L = 2, 3, 4, 4, 5  # batch, frames, latent height / width, text tokens


def hand_count():
    """Forward FLOPs of CFG on (B, T, H, W) by hand: convs 2*k*k*Cin*Cout*H*W per frame, matmuls 2*M*N*K,
    attention cores 4*Lq*Lk*D per head (= 4*Lq*Lk*C over all heads)."""
    C, N, HW = 32, B * T, H * W
    pix = N * HW  # 96 pixels over all frames
    frozen = trainable = attn_s = attn_t = 0
    frozen += 2 * 9 * 4 * C * pix  # conv_in
    trainable += 2 * 9 * 5 * C * pix  # conv_in_cond (trained with the temporal layers)
    trainable += 2 * 3 * C * C * pix  # temporal_conv_in: kernel 3 over frames
    # Resnets: 1 down (32 -> 32), 2 mid (32 -> 32), 2 up (32 + 32 skip -> 32, with a 1x1 shortcut).
    for cin in (C, C, C, 2 * C, 2 * C):
        frozen += 2 * 9 * cin * C * pix + 2 * 9 * C * C * pix  # conv1, conv2
        trainable += 2 * (2 * 3 * C * C * pix)  # temporal_conv1, temporal_conv2
        if cin != C:
            frozen += 2 * cin * C * pix  # conv_shortcut
    # Attention blocks: 1 down, 1 mid, 2 up; each a spatial transformer then a temporal one.
    for _ in range(4):
        frozen += 2 * 2 * C * C * pix  # proj_in, proj_out
        frozen += 4 * (2 * C * C * pix)  # attn1 q, k, v, out
        attn_s += 4 * HW * HW * C * N  # attn1 core: HW queries x HW keys per frame
        frozen += 2 * (2 * C * C * pix)  # attn2 q, out
        frozen += 2 * (2 * 24 * C * L * B)  # attn2 k, v of the (B, L, 24) context
        attn_s += 4 * (T * HW) * L * C * B  # attn2 core: T*HW queries x L keys per example
        frozen += 2 * C * (8 * C) * pix + 2 * (4 * C) * C * pix  # GEGLU ff: C -> 2*4C, 4C -> C
        trainable += 2 * 2 * C * C * pix  # temporal proj_in, proj_out
        trainable += 4 * (2 * C * C * pix)  # temporal attn1 q, k, v, out
        attn_t += 4 * T * T * C * (B * HW)  # over T frames at each of B*HW pixels
        trainable += 2 * C * (8 * C) * pix + 2 * (4 * C) * C * pix
    frozen += 2 * 9 * C * 4 * pix  # conv_out
    trainable += 2 * 3 * 4 * 4 * pix  # temporal_conv_out
    return frozen, trainable, attn_s, attn_t


def test_forward_flops_match_hand_count():
    got = flops.unet_flop_count(CFG, B, T, H, W, L)
    frozen, trainable, attn_s, attn_t = hand_count()
    assert (got.frozen, got.trainable, got.attention_spatial, got.attention_temporal) == (
        frozen,
        trainable,
        attn_s,
        attn_t,
    )
    assert flops.unet_flops(CFG, B, T, H, W, L) == frozen + trainable + attn_s + attn_t


def test_train_step_convention():
    f = flops.unet_flop_count(CFG, B, T, H, W, L)
    step = flops.train_step_flops(CFG, B, T, H, W, L)
    # Backward: weight and input gradients for trained ops and attention cores, input gradients only
    # for frozen ones.
    want = 2 * (f.trainable + f.attention_spatial + f.attention_temporal) + f.frozen
    assert step["backward"] == want and step["total"] == f.total + want
    every = flops.train_step_flops(CFG, B, T, H, W, L, trainable="all")
    assert every["total"] == 3 * f.total  # everything trains: the textbook 3x forward
    image = flops.unet_flop_count(CFG, B, T, H, W, L, image_mode=True)
    assert image.attention_temporal == 0 and image.trainable == 2 * 9 * 5 * 32 * B * T * H * W  # conv_in_cond


def test_sampling_stage_counts_guided_forwards_per_step():
    """Two-condition guidance: 3 forwards of B rows per step; text guidance: 2; steps multiply."""
    one = flops.unet_flops(CFG, 1, T, H, W, L)
    video = flops.sample_stage_flops(CFG, B, T, H, W, L, steps=7, guidance="two_condition")
    # Every op scales with the rows (the context's k / v too: once per row), so 3B rows = 3B x one row.
    assert video["passes"] == 3 and video["per_step"] == 3 * B * one and video["total"] == 7 * 3 * B * one
    key = flops.sample_stage_flops(CFG, B, 1, H, W, L, steps=5, guidance="text", image_mode=True)
    image = flops.unet_flop_count(CFG, 2 * B, 1, H, W, L, image_mode=True)
    assert key["total"] == 5 * image.total and image.trainable < flops.unet_flop_count(CFG, 2 * B, 1, H, W, L).trainable


def test_guidance_passes_match_the_sampler():
    from emu_jax.diffusion import guidance

    for mode, passes in flops.GUIDANCE_PASSES.items():
        assert len(guidance.MODE_CONDITIONS[mode]) == passes


def test_spatial_self_attention_by_length():
    # CFG has one level at H*W = 16 tokens: four spatial self-attention cores, 4 * HW * HW * C per frame.
    want = 4 * (4 * 16 * 16 * 32 * B * T)
    assert flops.spatial_self_attention_flops(CFG, B, T, H, W) == want
    assert flops.spatial_self_attention_flops(CFG, B, T, H, W, min_length=17) == 0


def test_vae_decode_flops_match_hand_count():
    from emu_jax.models.autoencoder import VAEConfig

    vae = VAEConfig(latent_channels=4, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4)
    n, h, w = 3, 4, 4
    pix = n * h * w
    z, c0, c1 = 4, 16, 8  # the decoder runs the channels reversed: 16 then 8
    want = 2 * z * z * pix  # post_quant_conv 1x1
    want += 2 * 9 * z * c0 * pix  # conv_in
    want += 2 * 2 * (2 * 9 * c0 * c0 * pix)  # mid: two resnets of two 3x3 convs
    want += 2 * 4 * c0 * c0 * pix + 4 * (h * w) ** 2 * c0 * n  # mid attention: q, k, v, out + core
    want += 2 * 2 * (2 * 9 * c0 * c0 * pix)  # up block 0: layers_per_block + 1 = 2 resnets of two convs, 16 ch
    want += 2 * 9 * c0 * c0 * (4 * pix)  # its upsampler conv at 2x
    want += 2 * 9 * c0 * c1 * 4 * pix + 2 * 9 * c1 * c1 * 4 * pix + 2 * c0 * c1 * 4 * pix  # resnet 16 -> 8
    want += 2 * (2 * 9 * c1 * c1 * 4 * pix)  # second resnet 8 -> 8
    want += 2 * 9 * c1 * 3 * 4 * pix  # conv_out
    got = flops.vae_decode_flops(vae, n, h, w)
    assert got["total"] == want and got["attention"] == 4 * (h * w) ** 2 * c0 * n
