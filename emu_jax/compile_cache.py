"""JAX's persistent compilation cache, on by default for the commands that train or sample (train, demo
train, ablate, and every Pipeline): a second or resumed run with the same program loads it instead of
compiling again."""

from __future__ import annotations

import os

import jax


def enable(path: str | None = None) -> str:
    """Turn on the cache at `path` (default ~/.cache/emu_jax/jax, under XDG_CACHE_HOME if set) unless one is
    already set (JAX_COMPILATION_CACHE_DIR or jax_compilation_cache_dir); returns the folder in use."""
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = path or os.path.join(base, "emu_jax", "jax")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    return path
