"""Analytic model FLOPs of the U-Net (forward) and of a training step, from the config alone.

Convention (as for MFU): only the matmul-like ops on activations count, at 2 FLOPs per
multiply-add:
- a conv `2 * prod(kernel) * Cin * Cout * (output positions)` (a temporal conv's kernel is
  `k x s x s`); a dense layer `2 * M * N * K`;
- attention cores `4 * Lq * Lk * D` per head (scores `q k^T` and `p v`), i.e. `4 Lq Lk C`;
- norms, softmax, activations, residual adds and the per-frame timestep-embedding MLPs
  (vectors, < 0.01% here) are not counted.
Rematerialisation is never counted: model FLOPs are what the maths needs, so
compiled / model FLOPs shows the recompute (full remat: about 4/3).

Training step (`train_step_flops`): forward + backward, where the backward of an op whose
weights train costs 2x its forward (input and weight gradients), of a frozen-weight op 1x
(input gradient only, since trainable temporal layers sit before almost every frozen one),
and of an attention core 2x (gradients of q, k and v). The input gradient of the first
convs, which nothing needs, is counted too (< 0.1%).
"""

from __future__ import annotations

import dataclasses

from emu_jax.models.trainable import is_trainable
from emu_jax.models.unet_config import UNetConfig

CATEGORIES = ("frozen", "trainable", "attention_spatial", "attention_temporal")


@dataclasses.dataclass
class FlopCount:
    """Forward FLOPs by category: weight ops (frozen / trainable) and attention cores."""

    frozen: float = 0.0
    trainable: float = 0.0
    attention_spatial: float = 0.0
    attention_temporal: float = 0.0

    @property
    def total(self) -> float:
        return self.frozen + self.trainable + self.attention_spatial + self.attention_temporal

    def as_dict(self) -> dict[str, float]:
        return {**dataclasses.asdict(self), "total": self.total}


class _Counter:
    def __init__(self, mode: str):
        self.mode, self.count = mode, FlopCount()
        self.self_attention_by_length: dict[int, float] = {}  # spatial self-attention cores by sequence length

    def weights(self, path: tuple[str, ...], flops: float) -> None:
        if is_trainable(path, self.mode):
            self.count.trainable += flops
        else:
            self.count.frozen += flops

    def attention(self, temporal: bool, flops: float) -> None:
        if temporal:
            self.count.attention_temporal += flops
        else:
            self.count.attention_spatial += flops


def _resblock(c: _Counter, cfg: UNetConfig, cin: int, cout: int, pix: int, temporal: bool) -> None:
    """`pix`: pixels over all frames (N * H * W)."""
    k_t = cfg.temporal_kernel  # the temporal conv is (k, 1, 1)
    c.weights(("conv1",), 2 * 9 * cin * cout * pix)
    c.weights(("conv2",), 2 * 9 * cout * cout * pix)
    if temporal:
        c.weights(("temporal_conv1",), 2 * 2 * k_t * cout * cout * pix)  # conv1's and conv2's
    if cin != cout:
        c.weights(("conv_shortcut",), 2 * cin * cout * pix)


def _transformer_layer(
    c: _Counter,
    ch: int,
    tokens: int,
    lq: int,
    lk_self: int,
    context_dim: int | None,
    text_len: int,
    batch: int,
    temporal: bool,
) -> None:
    """One (Basic/Temporal) transformer layer on `tokens` query tokens of width `ch`: self-attention over
    sequences of length `lk_self` (`lq` = lk_self), optional cross-attention to a `text_len` context per
    example, GEGLU feed-forward (inner 4 ch, gated: ch -> 8 ch -> ... -> ch)."""
    name = ("temporal_x",) if temporal else ("x",)
    c.weights(name, 2 * 4 * ch * ch * tokens)  # q, k, v, out
    c.attention(temporal, 4 * lk_self * ch * tokens)  # 4 Lq Lk C over tokens / Lq sequences
    if not temporal:
        c.self_attention_by_length[lk_self] = c.self_attention_by_length.get(lk_self, 0.0) + 4 * lk_self * ch * tokens
    if context_dim is not None:
        c.weights(name, 2 * 2 * ch * ch * tokens)  # q, out
        c.weights(name, 2 * 2 * context_dim * ch * text_len * batch)  # k, v of the context, once per example
        c.attention(temporal, 4 * text_len * ch * tokens)
    c.weights(name, 2 * (8 * ch * ch + 4 * ch * ch) * tokens)


def _spatial_transformer(
    c: _Counter, cfg: UNetConfig, ch: int, hw: int, frames_total: int, batch: int, text_len: int, layers: int
) -> None:
    tokens = hw * frames_total
    c.weights(("proj",), 2 * 2 * ch * ch * tokens)  # proj_in, proj_out
    for i in range(layers):
        dim = cfg.context_dims[i if len(cfg.context_dims) > 1 else 0]
        _transformer_layer(c, ch, tokens, hw, hw, dim, text_len, batch, temporal=False)


def _temporal_attention(c: _Counter, cfg: UNetConfig, ch: int, hw: int, frames: int, batch: int, text_len: int) -> None:
    tokens = hw * frames * batch
    c.weights(("temporal_proj",), 2 * 2 * ch * ch * tokens)
    dim = cfg.context_dims[0] if cfg.temporal_cross_attention else None
    for _ in range(cfg.temporal_layers):
        _transformer_layer(c, ch, tokens, frames, frames, dim, text_len, batch, temporal=True)


def unet_flop_count(
    config: UNetConfig,
    batch: int,
    frames: int,
    height: int,
    width: int,
    text_len: int,
    trainable: str = "temporal",
    image_mode: bool = False,
) -> FlopCount:
    """Forward FLOPs of `UNet` on `(batch, frames, height, width)` latents with `text_len`-token
    contexts, split into frozen / trainable weight ops (`trainable`: the `train.trainable` mode)
    and attention cores. `image_mode` skips the temporal layers."""
    return _unet_counter(config, batch, frames, height, width, text_len, trainable, image_mode).count


def spatial_self_attention_flops(
    config: UNetConfig,
    batch: int,
    frames: int,
    height: int,
    width: int,
    min_length: int = 0,
    image_mode: bool = False,
) -> float:
    """Forward FLOPs of the spatial self-attention cores over sequences of at least `min_length` tokens
    (on TPU, attention 'auto' runs exactly these as the splash kernel, whose FLOPs XLA does not count)."""
    c = _unet_counter(config, batch, frames, height, width, 0, "temporal", image_mode)
    return sum(f for n, f in c.self_attention_by_length.items() if n >= min_length)


def _unet_counter(
    config: UNetConfig,
    batch: int,
    frames: int,
    height: int,
    width: int,
    text_len: int,
    trainable: str,
    image_mode: bool,
) -> _Counter:
    cfg = config
    c = _Counter(trainable)
    n = batch * frames
    temporal = cfg.temporal and not image_mode
    k_t = cfg.temporal_kernel  # the temporal conv is (k, 1, 1)
    levels, chans = cfg.num_levels, cfg.level_channels
    res = [(height // 2**i) * (width // 2**i) for i in range(levels)]
    c0 = cfg.model_channels
    c.weights(("conv_in",), 2 * 9 * cfg.in_channels * c0 * n * res[0])
    if cfg.cond_channels:
        c.weights(("conv_in_cond",), 2 * 9 * cfg.cond_channels * c0 * n * res[0])
    if temporal:
        c.weights(("temporal_conv_in",), 2 * k_t * c0 * c0 * n * res[0])

    def attn(level: int, ch: int) -> None:
        _spatial_transformer(c, cfg, ch, res[level], n, batch, text_len, cfg.level_transformer_layers[level])
        if temporal:
            _temporal_attention(c, cfg, ch, res[level], frames, batch, text_len)

    def resample(ch: int, out_pix: int) -> None:
        c.weights(("conv",), 2 * 9 * ch * ch * out_pix)
        if temporal:
            c.weights(("temporal_conv",), 2 * k_t * ch * ch * out_pix)

    skips, ch = [c0], c0
    for i in range(levels):
        for _ in range(cfg.level_res_blocks[i]):
            _resblock(c, cfg, ch, chans[i], n * res[i], temporal)
            ch = chans[i]
            if cfg.level_has_attention(i):
                attn(i, ch)
            skips.append(ch)
        if i < levels - 1:
            resample(ch, n * res[i + 1])
            skips.append(ch)
    _resblock(c, cfg, ch, ch, n * res[-1], temporal)  # mid block: resnet, attention, resnet
    attn(levels - 1, ch)
    _resblock(c, cfg, ch, ch, n * res[-1], temporal)
    for j in range(levels):
        i = levels - 1 - j
        for _ in range(cfg.level_res_blocks[i] + 1):
            _resblock(c, cfg, ch + skips.pop(), chans[i], n * res[i], temporal)
            ch = chans[i]
            if cfg.level_has_attention(i):
                attn(i, ch)
        if j < levels - 1:
            resample(ch, n * res[i - 1])
    c.weights(("conv_out",), 2 * 9 * ch * cfg.out_channels * n * res[0])
    if temporal:
        c.weights(("temporal_conv_out",), 2 * k_t * cfg.out_channels**2 * n * res[0])
    return c


def unet_flops(config: UNetConfig, batch: int, frames: int, height: int, width: int, text_len: int) -> float:
    """Total forward FLOPs of the U-Net (see the module docstring for what counts)."""
    return unet_flop_count(config, batch, frames, height, width, text_len).total


def train_step_flops(
    config: UNetConfig,
    batch: int,
    frames: int,
    height: int,
    width: int,
    text_len: int,
    trainable: str = "temporal",
    image_mode: bool = False,
) -> dict[str, float]:
    """U-Net FLOPs of one training step: forward, backward (2x trainable and attention, 1x frozen), total."""
    f = unet_flop_count(config, batch, frames, height, width, text_len, trainable, image_mode)
    backward = 2 * (f.trainable + f.attention_spatial + f.attention_temporal) + f.frozen
    parts = {f"forward_{k}": v for k, v in dataclasses.asdict(f).items()}
    return {"forward": f.total, "backward": backward, "total": f.total + backward, **parts}


# ---- sampling ----------------------------------------------------------------------------------
# Forward passes batched per denoising step by each guidance mode (diffusion.guidance.MODE_CONDITIONS): text CFG runs
# (empty prompt, prompt), two-condition CFG (no image + empty prompt, image + empty prompt, image + prompt).
GUIDANCE_PASSES = {"text": 2, "two_condition": 3}


def sample_stage_flops(
    config: UNetConfig,
    batch: int,
    frames: int,
    height: int,
    width: int,
    text_len: int,
    steps: int,
    guidance: str,
    image_mode: bool = False,
) -> dict[str, float]:
    """U-Net FLOPs of one denoising stage for `batch` items: `steps` guided forwards, each over
    `batch x passes` rows (`guidance`: 'text' or 'two_condition'). 'attention': the cores' share."""
    passes = GUIDANCE_PASSES[guidance]
    f = unet_flop_count(config, batch * passes, frames, height, width, text_len, image_mode=image_mode)
    step = f.total
    return {
        "per_step": step,
        "attention_per_step": f.attention_spatial + f.attention_temporal,
        "passes": passes,
        "total": steps * step,
    }


def vae_decode_flops(vae_config, frames: int, height: int, width: int) -> dict[str, float]:
    """Forward FLOPs of the VAE decoder on `frames` latent frames of `height x width`
    (`emu_jax.models.autoencoder.Decoder`: post-quant 1x1 conv, conv_in, mid block of two resnets and
    single-head attention, up blocks of `layers_per_block + 1` resnets with a 2x upsampling conv
    between them, conv_out). 'attention': the mid attention's core, `4 (hw)^2 C`."""
    cfg = vae_config
    chans = tuple(reversed(cfg.block_out_channels))
    z, pix = cfg.latent_channels, frames * height * width
    total = 2 * z * z * pix if cfg.use_post_quant_conv else 0.0
    total += 2 * 9 * z * chans[0] * pix

    def resnet(cin: int, cout: int, p: int) -> float:
        return 2 * 9 * cin * cout * p + 2 * 9 * cout * cout * p + (2 * cin * cout * p if cin != cout else 0)

    c = chans[0]
    total += 2 * resnet(c, c, pix)
    attention = 0.0
    if cfg.mid_block_add_attention:
        total += 2 * 4 * c * c * pix  # q, k, v, out
        attention = 4 * (height * width) ** 2 * c * frames
    ch = c
    for i, c in enumerate(chans):
        for _ in range(cfg.layers_per_block + 1):
            total += resnet(ch, c, pix)
            ch = c
        if i < len(chans) - 1:
            pix *= 4
            total += 2 * 9 * c * c * pix
    total += 2 * 9 * ch * cfg.out_channels * pix
    return {"total": total + attention, "attention": attention}
