"""T5-XL encoder (t5-v1_1-xl, 2048-d): Emu's second text context (SPEC "text encoders").

One `text_encoders` entry {kind, tokenizer, max_length, config}. 77 tokens
(ours: the paper gives no T5 length; matching CLIP keeps the batch simple).
`tokenizer` defaults to the offline byte tokenizer; a converted checkpoint sets
it to its copied `spiece.model` folder.
"""

import ml_collections

CONFIG = dict(
    vocab_size=32128,
    d_model=2048,
    d_kv=64,
    d_ff=5120,
    num_layers=24,
    num_heads=32,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    layer_norm_epsilon=1e-6,
    feed_forward_proj="gated-gelu",
    dtype="bfloat16",
)


def get_config(arg=None):
    """`arg`: tokenizer ('byte' or a folder with T5's spiece.model / tokenizer.json)."""
    return ml_collections.ConfigDict(dict(kind="t5", tokenizer=arg or "byte", max_length=77, config=dict(CONFIG)))
