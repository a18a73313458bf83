"""emu_jax: Emu Video (factorised text-to-video latent diffusion) in JAX/Flax.

Submodules are imported lazily by users; importing the package itself stays
cheap so that `emu-video --help` answers instantly.
"""

__version__ = "0.1.0"
