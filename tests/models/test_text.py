"""Text encoders: configs, masks (causal / padding), EOS pooling, input validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax.models import clip, text
from emu_jax.models.t5 import relative_position_bucket

CLIP = text.CLIPTextConfig(
    vocab_size=259,
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    max_position_embeddings=8,
    eos_token_id=258,
)
T5 = text.T5Config(
    vocab_size=259,
    d_model=16,
    d_kv=8,
    d_ff=32,
    num_layers=2,
    num_heads=2,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=16,
)


@pytest.fixture(scope="module")
def params():
    return {"clip": text.init_params(CLIP, jax.random.PRNGKey(0)), "t5": text.init_params(T5, jax.random.PRNGKey(1))}


def test_configs_roundtrip_and_hf_mapping():
    for cfg in (CLIP, T5):
        assert text.config_from_dict(text.kind_of(cfg), cfg.to_dict()) == cfg
    hf = text.T5Config.from_hf_config({"d_model": 32, "feed_forward_proj": "gated-gelu", "num_layers": 3})
    assert hf.gated and hf.act_name == "gelu_new" and hf.num_layers == 3
    assert text.T5Config.from_hf_config({"feed_forward_proj": "relu"}).act_name == "relu"
    proj = text.CLIPTextConfig.from_hf_config(
        {
            "hidden_size": 32,
            "num_attention_heads": 4,
            "projection_dim": 8,
            "architectures": ["CLIPTextModelWithProjection"],
        }
    )
    assert proj.projection_dim == 8
    with pytest.raises(ValueError, match="unknown text encoder kind 'bert'"):
        text.config_from_dict("bert", {})
    with pytest.raises(ValueError, match="unsupported activation 'swish2'"):
        text.CLIPTextConfig(hidden_act="swish2")


def test_eos_pooling_positions():
    ids = jnp.array([[257, 5, 258, 256], [257, 258, 258, 258]])
    assert clip.eos_positions(CLIP, ids).tolist() == [2, 1]  # first EOS, pad may equal EOS
    legacy = text.CLIPTextConfig.from_dict({**CLIP.to_dict(), "eos_token_id": 2})
    assert clip.eos_positions(legacy, jnp.array([[1, 7, 9, 3]])).tolist() == [2]  # argmax id


def test_clip_is_causal_and_t5_ignores_padding(params):
    ids = jnp.array([[257, 10, 20, 30, 258, 256, 256, 256]])
    mask = ids != 256
    h = text.encode_text(CLIP, params["clip"], ids, mask)
    assert h.shape == (1, 8, 16) and h.dtype == jnp.float32
    later = ids.at[0, 6].set(99)
    np.testing.assert_allclose(text.encode_text(CLIP, params["clip"], later, mask)[:, :6], h[:, :6], atol=1e-6)
    h5 = text.encode_text(T5, params["t5"], ids, mask)
    # Changing a padded token must not change the real tokens' states; changing a real one must.
    np.testing.assert_allclose(text.encode_text(T5, params["t5"], later, mask)[:, :5], h5[:, :5], atol=1e-6)
    assert not np.allclose(text.encode_text(T5, params["t5"], ids.at[0, 3].set(99), mask)[:, :3], h5[:, :3])
    pooled = text.pooled_text(CLIP, params["clip"], ids, mask)
    np.testing.assert_allclose(pooled, h[:, 4], atol=1e-6)


def test_relative_buckets_are_symmetric_and_bounded():
    rel = jnp.arange(-40, 41)
    b = relative_position_bucket(rel, 8, 16)
    assert int(b.min()) >= 0 and int(b.max()) < 8
    assert b[40] == 0 and b[41] == 5 and b[39] == 1  # rel 0; +1 uses the upper half; -1
    assert b[0] == b[10]  # beyond max_distance all share the last bucket
    torch = pytest.importorskip("torch")
    from transformers.models.t5.modeling_t5 import T5Attention

    want = T5Attention._relative_position_bucket(torch.arange(-40, 41), True, 8, 16).numpy()
    assert np.asarray(b).tolist() == want.tolist()


def test_bad_text_inputs(params):
    with pytest.raises(ValueError, match="9 tokens exceed CLIP's max_position_embeddings 8"):
        text.encode_text(CLIP, params["clip"], jnp.zeros((1, 9), jnp.int32))
    with pytest.raises(ValueError, match=r"token ids must be \(B, L\)"):
        text.encode_text(T5, params["t5"], jnp.zeros((9,), jnp.int32))
    with pytest.raises(ValueError, match="mask shape"):
        text.encode_text(T5, params["t5"], jnp.zeros((1, 4), jnp.int32), jnp.ones((1, 5), bool))
