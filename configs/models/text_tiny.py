"""Tiny text encoders for CPU tests: a CLIP-style and a T5-style encoder on the byte tokenizer.

`text_tiny.py` gives both (like Emu's CLIP + T5 pair); `:clip` or `:t5` one.
Each entry is {kind, tokenizer, max_length, config} as in a model config's
`text_encoders` list.
"""

import ml_collections

CLIP = dict(
    kind="clip",
    tokenizer="byte",
    max_length=32,
    config=dict(
        vocab_size=259,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=32,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        eos_token_id=258,
        projection_dim=0,
        dtype="float32",
    ),
)
T5 = dict(
    kind="t5",
    tokenizer="byte",
    max_length=32,
    config=dict(
        vocab_size=259,
        d_model=48,
        d_kv=8,
        d_ff=96,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        layer_norm_epsilon=1e-6,
        feed_forward_proj="gated-gelu",
        dtype="float32",
    ),
)


def get_config(arg=None):
    choice = {None: [CLIP, T5], "clip": [CLIP], "t5": [T5]}
    if arg not in choice:
        raise ValueError(f"configs/models/text_tiny.py takes 'clip' or 't5' (or nothing), got {arg!r}")
    return ml_collections.ConfigDict(dict(text_encoders=choice[arg]))
