"""diffusers `UNet2DConditionModel` (SD 1.x / 2.x blocks) -> our spatio-temporal `UNet` params.

Our module names mirror diffusers' keys, so each torch key maps to a Flax
path by folding numeric indices into the preceding name
(`down_blocks.0.resnets.1.conv1.weight` -> `down_blocks_0/resnets_1/conv1/kernel`).
Spatial params come from the checkpoint; temporal layers and the conditioning
conv keep their identity / zero init from `init_params`.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import numpy as np

from emu_jax.convert.common import ConversionChecker, load_safetensors_dir, read_config_json
from emu_jax.models.trainable import is_trainable
from emu_jax.models.unet import init_params
from emu_jax.models.unet_config import UNetConfig

DOWN_TYPES = {"CrossAttnDownBlock2D": True, "DownBlock2D": False}
UP_TYPES = {"CrossAttnUpBlock2D": True, "UpBlock2D": False}

# diffusers config fields we cannot represent, with the value(s) that are fine.
_MUST_EQUAL: dict[str, tuple[Any, ...]] = {
    "mid_block_type": ("UNetMidBlock2DCrossAttn",),
    "act_fn": ("silu",),
    "center_input_sample": (False,),
    "downsample_padding": (1,),
    "mid_block_scale_factor": (1, 1.0),
    "dual_cross_attention": (False,),
    "class_embed_type": (None,),
    "addition_embed_type": (None,),
    "num_class_embeds": (None,),
    "encoder_hid_dim": (None,),
    "encoder_hid_dim_type": (None,),
    "resnet_time_scale_shift": ("default",),
    "resnet_skip_time_act": (False,),
    "resnet_out_scale_factor": (1, 1.0),
    "time_embedding_type": ("positional",),
    "time_embedding_dim": (None,),
    "time_embedding_act_fn": (None,),
    "timestep_post_act": (None,),
    "time_cond_proj_dim": (None,),
    "conv_in_kernel": (3,),
    "conv_out_kernel": (3,),
    "attention_type": ("default",),
    "class_embeddings_concat": (False,),
    "mid_block_only_cross_attention": (None, False),
    "cross_attention_norm": (None,),
    "num_attention_heads": (None,),
    "reverse_transformer_layers_per_block": (None,),
    "dropout": (0, 0.0),
}


def config_from_diffusers(
    d: Mapping[str, Any], cond_channels: int = 0, temporal: bool = True, **overrides
) -> UNetConfig:
    """UNetConfig from a diffusers UNet2DConditionModel config.json dict; ValueError names unsupported fields."""
    for field, ok in _MUST_EQUAL.items():
        if d.get(field, ok[0]) not in ok:
            raise ValueError(f"unsupported diffusers UNet config: {field}={d[field]!r} (supported: {ok})")
    if d.get("only_cross_attention", False) not in (False, None) and any(np.atleast_1d(d["only_cross_attention"])):
        raise ValueError(f"unsupported diffusers UNet config: only_cross_attention={d['only_cross_attention']!r}")
    down = list(d.get("down_block_types", []))
    up = list(d.get("up_block_types", []))
    bad = [t for t in down if t not in DOWN_TYPES] + [t for t in up if t not in UP_TYPES]
    if bad:
        raise ValueError(f"unsupported diffusers block types {bad}; supported: {list(DOWN_TYPES) + list(UP_TYPES)}")
    if [DOWN_TYPES[t] for t in down] != [UP_TYPES[t] for t in reversed(up)]:
        raise ValueError(f"up_block_types {up} do not mirror down_block_types {down}")
    channels = list(d["block_out_channels"])
    if any(c % channels[0] for c in channels):
        raise ValueError(f"block_out_channels={channels} must be multiples of the first entry")
    cross = d.get("cross_attention_dim", 1280)
    if isinstance(cross, (list, tuple)):
        if len(set(cross)) != 1:
            raise ValueError(f"unsupported diffusers UNet config: per-block cross_attention_dim={cross}")
        cross = cross[0]
    layers = d.get("transformer_layers_per_block", 1)
    if isinstance(layers, (list, tuple)) and any(isinstance(x, (list, tuple)) for x in layers):
        raise ValueError(f"unsupported diffusers UNet config: nested transformer_layers_per_block={layers}")
    fields = dict(
        in_channels=int(d.get("in_channels", 4)),
        cond_channels=int(cond_channels),
        out_channels=int(d.get("out_channels", 4)),
        model_channels=int(channels[0]),
        channel_mult=tuple(c // channels[0] for c in channels),
        num_res_blocks=d.get("layers_per_block", 2),
        attention_resolutions=tuple(2**i for i, t in enumerate(down) if DOWN_TYPES[t]),
        num_heads=d.get("attention_head_dim", 8),  # diffusers' attention_head_dim is the head count here
        head_dim=None,
        transformer_layers=layers,
        context_dims=(int(cross),),
        use_linear_projection=bool(d.get("use_linear_projection", False)),
        norm_groups=int(d.get("norm_num_groups", 32)),
        norm_eps=float(d.get("norm_eps", 1e-5)),
        flip_sin_to_cos=bool(d.get("flip_sin_to_cos", True)),
        freq_shift=float(d.get("freq_shift", 0)),
        upcast_attention=bool(d.get("upcast_attention", False)),
        temporal=bool(temporal),
    )
    fields.update(overrides)
    return UNetConfig(**fields)


def torch_key_to_path(key: str, ndim: int) -> tuple[tuple[str, ...], str | None]:
    """`'a.0.b.weight'` -> (('a_0', 'b', 'kernel'|'scale'), layout kind or None to decide by target rank)."""
    parts: list[str] = []
    for p in key.split("."):
        if p.isdigit() and parts:
            parts[-1] = f"{parts[-1]}_{p}"
        else:
            parts.append(p)
    leaf = parts.pop()
    if leaf == "bias":
        return tuple(parts) + ("bias",), "none"
    if leaf != "weight":
        return tuple(parts) + (leaf,), "none"
    if ndim == 1:
        return tuple(parts) + ("scale",), "none"
    return tuple(parts) + ("kernel",), {2: "linear", 4: "conv"}.get(ndim)


def convert_unet_state_dict(state: Mapping[str, np.ndarray], config: UNetConfig, seed: int = 0) -> dict:
    """Fill fresh `init_params(config)` with the spatial weights of a diffusers state dict."""
    target = init_params(config, jax.random.key(seed))
    checker = ConversionChecker(state, target)
    for key, value in state.items():
        path, kind = torch_key_to_path(key, np.ndim(value))
        leaf = checker.target.get(path)
        if kind == "conv" and leaf is not None and len(leaf.shape) == 2:
            kind = "conv1x1_as_linear"  # proj_in / proj_out saved as 1x1 conv (use_linear_projection=False)
        checker.assign(path, key, kind or "none")
    return checker.finish(required=lambda p: not is_trainable(p, "temporal"))


def from_diffusers_unet(
    path: str, cond_channels: int = 0, temporal: bool = True, **overrides
) -> tuple[UNetConfig, dict]:
    """Read a diffusers `unet/` folder (config.json + safetensors, single or sharded) -> (UNetConfig, params).

    `path` may also be a pipeline root holding `unet/`. `cond_channels` adds the
    zero-initialised conditioning conv (SPEC: 9 = image latent + mask);
    `temporal` builds identity-initialised temporal layers; other keyword
    overrides (e.g. dtype='bfloat16', remat='full') go into the UNetConfig.
    Raises ValueError naming missing / unexpected / misshaped keys.
    """
    if os.path.isdir(os.path.join(path, "unet")) and not os.path.isfile(os.path.join(path, "config.json")):
        path = os.path.join(path, "unet")
    d = read_config_json(path)
    if d.get("_class_name", "UNet2DConditionModel") != "UNet2DConditionModel":
        raise ValueError(f"{path}: _class_name={d['_class_name']!r}, expected 'UNet2DConditionModel'")
    config = config_from_diffusers(d, cond_channels=cond_channels, temporal=temporal, **overrides)
    params = convert_unet_state_dict(load_safetensors_dir(path), config)
    return config, params
