"""Standard video / image metrics (FID, FVD, CLIP score) computed in JAX; see `emu_jax.metrics.compute`."""
