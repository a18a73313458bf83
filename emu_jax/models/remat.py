"""Rematerialisation policies of the U-Net, by name, and the wrapper that applies one to a module class.

`UNetConfig.remat` picks what a rematerialised module keeps for its backward pass:
- 'full': nothing but its inputs (everything inside is recomputed);
- 'save_dots': every matmul output, attention scores included (large at 64x64 latents);
- 'save_dots_no_batch': matmuls without batch dimensions (projections, feed-forward), so the
  attention scores are recomputed;
- 'offload': the residual stream between transformer sublayers and inside resnets (tensors
  tagged `RESIDUAL`) goes to pinned host memory instead of being recomputed; needs a TPU or
  GPU (the training loop refuses it on a CPU mesh).
`UNetConfig.remat_scope` picks the unit: 'block' wraps each resnet, spatial transformer and
temporal attention block; 'layer' wraps each resnet and, inside the transformers, each
attention and each feed-forward separately, so the backward recomputes one layer at a time.
Wrapping never changes parameter names (checkpoints load either way).
"""

from __future__ import annotations

import flax.linen as nn
import jax
from jax.ad_checkpoint import checkpoint_name

POLICIES = ("none", "full", "save_dots", "save_dots_no_batch", "offload")
SCOPES = ("block", "layer")
RESIDUAL = "residual"  # checkpoint name of the tensors 'offload' moves to host memory


def tag_residual(x: jax.Array) -> jax.Array:
    """Name `x` so the 'offload' policy keeps it (on the host) instead of recomputing it."""
    return checkpoint_name(x, RESIDUAL)


def checkpoint_policy(policy: str):
    """The `jax.checkpoint` policy for a name in POLICIES ('full' -> None: save nothing)."""
    if policy not in POLICIES or policy == "none":
        raise ValueError(f"remat policy {policy!r} has no checkpoint policy; allowed: {POLICIES[1:]}")
    cp = jax.checkpoint_policies
    if policy == "offload":
        return cp.save_and_offload_only_these_names(
            names_which_can_be_saved=[],
            names_which_can_be_offloaded=[RESIDUAL],
            offload_src="device",
            offload_dst="pinned_host",
        )
    return {"full": None, "save_dots": cp.checkpoint_dots, "save_dots_no_batch": cp.dots_with_no_batch_dims_saveable}[
        policy
    ]


def remat(cls, policy: str, static_argnums: tuple[int, ...] = ()):
    """`cls` wrapped in `nn.remat` with `policy` ('none': `cls` unchanged)."""
    if policy == "none":
        return cls
    return nn.remat(cls, policy=checkpoint_policy(policy), static_argnums=static_argnums)
