"""Model definitions (Flax Linen): U-Net, autoencoder, text encoders."""

from emu_jax.models.unet import UNet, UNetConfig  # noqa: F401
