"""CLIP ViT-L/14 text encoder (SD 1.x's, 768-d): Emu's first text context (SPEC "text encoders").

One `text_encoders` entry {kind, tokenizer, max_length, config}. `tokenizer`
defaults to the offline byte tokenizer; a converted checkpoint sets it to its
copied CLIP tokenizer folder (`emu-video convert` writes it).
"""

import ml_collections

CONFIG = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    eos_token_id=49407,
    projection_dim=0,
    dtype="bfloat16",
)


def get_config(arg=None):
    """`arg`: tokenizer ('byte' or a folder with CLIP's tokenizer files)."""
    return ml_collections.ConfigDict(dict(kind="clip", tokenizer=arg or "byte", max_length=77, config=dict(CONFIG)))
