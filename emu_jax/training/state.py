"""Train state: trainable params with optimiser state and EMA, frozen params without.

Frozen parameters (the T2I model's spatial layers, the VAE, frozen text
encoders) live in the state so that one pytree describes the run, but they get
no gradients and no optimiser slots. The RNG is not stored: each step derives
it from `fold_in(seed, step)`, so resuming at step k reproduces step k's noise.
"""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from emu_jax.models.trainable import merge_params, split_params


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    trainable: Any
    frozen: Any
    opt_state: Any
    ema: Any  # same tree as `trainable`, or {} when EMA is off

    @property
    def params(self) -> Any:
        return merge_params(self.trainable, self.frozen)

    @property
    def ema_params(self) -> Any:
        return merge_params(self.ema if self.ema else self.trainable, self.frozen)


def ema_update(ema: Any, params: Any, decay: float | jax.Array) -> Any:
    # The decay in each weight's dtype, as a Python float would be: a traced f32 would promote bf16 weights.
    def one(e, p):
        d = jnp.asarray(decay, e.dtype)
        return d * e + (1 - d) * p

    return jax.tree.map(one, ema, params)


def abstract_state(boxed_params: Any, is_trainable, tx: optax.GradientTransformation, use_ema: bool) -> TrainState:
    """The state as a boxed abstract tree (no memory): the input of `sharding.params_shardings`.

    Optimiser slots mirror the trainable params' boxes, so they inherit the
    params' logical sharding (MaxText's trick).
    """
    trainable, frozen = split_params(boxed_params, is_trainable)
    return TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32),
        trainable=trainable,
        frozen=frozen,
        opt_state=jax.eval_shape(tx.init, trainable),
        ema=trainable if use_ema else {},
    )


def create_state(
    params: Any, is_trainable, tx: optax.GradientTransformation, use_ema: bool, step: int = 0
) -> TrainState:
    """A concrete state from unboxed params (call under jit with out_shardings to place it)."""
    params = nn.meta.unbox(params)
    trainable, frozen = split_params(params, is_trainable)
    return TrainState(
        step=jnp.asarray(step, jnp.int32),
        trainable=trainable,
        frozen=frozen,
        opt_state=tx.init(trainable),
        ema=jax.tree.map(jnp.copy, trainable) if use_ema else {},
    )
