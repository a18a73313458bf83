"""Fresh VAE and text-encoder parameters come from one compiled program each (eager Flax init compiled
dozens of small ops: ~10 s of every new tiny-model process) and equal Flax's own init."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax.models import autoencoder, text

# Sizes no other test uses, so no earlier test has compiled these shapes.
VAE = autoencoder.VAEConfig(latent_channels=6, block_out_channels=(12, 20), layers_per_block=1, norm_num_groups=4)
CLIP = text.CLIPTextConfig(
    vocab_size=263, hidden_size=20, intermediate_size=44, num_hidden_layers=1, num_attention_heads=2,
    max_position_embeddings=8, eos_token_id=262,
)  # fmt: skip
T5 = text.T5Config(
    vocab_size=263, d_model=20, d_kv=10, d_ff=44, num_layers=1, num_heads=2,
    relative_attention_num_buckets=8, relative_attention_max_distance=16,
)  # fmt: skip
IDS, MASK = jnp.zeros((1, 8), jnp.int32), jnp.ones((1, 8), bool)
CASES = {
    "vae": (
        lambda key: autoencoder.init_params(VAE, key, image_size=8),
        lambda key: autoencoder.AutoencoderKL(VAE).init(key, jnp.zeros((1, 8, 8, 3))),
    ),
    "clip": (lambda key: text.init_params(CLIP, key), lambda key: text.build_module(CLIP).init(key, IDS, MASK)),
    "t5": (lambda key: text.init_params(T5, key), lambda key: text.build_module(T5).init(key, IDS, MASK)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_init_is_one_compiled_program_equal_to_flax_init(name):
    init, flax_init = CASES[name]
    compiles = []

    def listen(event, seconds, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(seconds)

    key = jax.random.key(7)
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        params = jax.block_until_ready(init(key))
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert len(compiles) <= 1  # 0 when the persistent compilation cache already holds it

    expected = nn.meta.unbox(flax_init(key))
    assert jax.tree.structure(params) == jax.tree.structure(expected)
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-7)
