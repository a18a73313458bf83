"""Convert a diffusers `AutoencoderKL` folder (config.json + safetensors) into our VAE params."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

from emu_jax.convert.common import ConversionChecker, load_safetensors_dir, read_config_json
from emu_jax.convert.torch_names import assign_by_name
from emu_jax.models.autoencoder import AutoencoderKL, VAEConfig

DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json")
TRANSFORMERS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")

# Checkpoints saved by old diffusers name the mid-block attention differently.
_LEGACY_ATTENTION = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


def require_weights(path: str, expected: tuple[str, ...]) -> None:
    """FileNotFoundError naming the folder and the file names we look for when no weights are there."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"checkpoint folder {path!r} does not exist")
    names = os.listdir(path)
    if not any(n.endswith(".safetensors") or n.endswith(".safetensors.index.json") for n in names):
        raise FileNotFoundError(
            f"no weights in {path!r}: expected one of {list(expected)} (or another *.safetensors); "
            f"found {sorted(names)}"
        )


def _rename(key: str) -> str:
    for old, new in _LEGACY_ATTENTION.items():
        if ".attentions." in key and old in key:
            return key.replace(old, new)
    return key


def target_shapes(module, *example_inputs) -> dict:
    """Param shapes of a Linen module without allocating them (`{"params": ...}` of ShapeDtypeStructs)."""
    import flax.linen as nn

    shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *example_inputs))
    return nn.meta.unbox(shapes)["params"]


def from_diffusers_vae(path: str) -> tuple[VAEConfig, dict]:
    """diffusers AutoencoderKL folder -> (VAEConfig, {"params": ...}); exact key / shape checking."""
    require_weights(path, DIFFUSERS_WEIGHTS)
    cfg = VAEConfig.from_diffusers_config(read_config_json(path))
    state = load_safetensors_dir(path)
    s = 2 * cfg.downsample_factor
    target = target_shapes(AutoencoderKL(cfg), jnp.zeros((1, s, s, cfg.in_channels)))
    checker = ConversionChecker(state, target)
    assign_by_name(checker, _rename)
    return cfg, {"params": checker.finish()}
