"""Model definitions (Flax Linen): U-Net, autoencoder, text encoders."""

from emu_jax.models.autoencoder import AutoencoderKL, VAEConfig  # noqa: F401
from emu_jax.models.text import CLIPTextConfig, T5Config  # noqa: F401
from emu_jax.models.unet import UNet, UNetConfig  # noqa: F401
