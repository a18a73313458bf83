"""Converters from PyTorch (diffusers / transformers safetensors) checkpoints to Flax params."""

from emu_jax.convert.common import (  # noqa: F401
    ConversionChecker,
    load_safetensors_dir,
    read_config_json,
    torch_to_flax,
)
from emu_jax.convert.pipeline import convert_diffusers_pipeline  # noqa: F401
from emu_jax.convert.text import from_transformers_clip, from_transformers_t5  # noqa: F401
from emu_jax.convert.unet import from_diffusers_unet  # noqa: F401
from emu_jax.convert.vae import from_diffusers_vae  # noqa: F401
