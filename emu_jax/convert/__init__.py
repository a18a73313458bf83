"""Converters from PyTorch (diffusers / transformers safetensors) checkpoints to Flax params."""

from emu_jax.convert.common import (  # noqa: F401
    ConversionChecker,
    load_safetensors_dir,
    read_config_json,
    torch_to_flax,
)
from emu_jax.convert.unet import from_diffusers_unet  # noqa: F401
