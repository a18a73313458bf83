"""Text-embedding cache: run the frozen text encoders once per caption, then train without them.

`encode_captions` tokenises and encodes unique captions in fixed-size
batches (one compile per encoder), `save_cache` / `load_cache` store them in
a `.npz` keyed by caption hash, and `TextEmbeddingCache.lookup(captions)`
returns `context_i` (B, L_i, D_i) / `context_mask_i` (B, L_i), the batch keys
`EmuModel.batch_contexts` reads instead of token ids.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import jax
import numpy as np

from emu_jax.models import text as text_lib
from emu_jax.models.tokenizers import Tokenizer, check_vocab


def caption_key(caption: str) -> str:
    """Stable key of a caption: sha1 of its UTF-8 bytes (hex)."""
    return hashlib.sha1(caption.encode("utf-8")).hexdigest()


def _default_max_length(cfg: text_lib.TextConfig) -> int:
    return getattr(cfg, "max_position_embeddings", 77)


def encode_captions(encoders: Sequence[tuple[text_lib.TextConfig, Any]], tokenizers: Sequence[Tokenizer],
                    captions: Sequence[str], batch_size: int = 32,
                    max_lengths: Sequence[int] | None = None, dtype=np.float32) -> dict[str, np.ndarray]:
    """Encode unique `captions` with each (config, {"params": ...}) encoder and its tokenizer.

    Returns {"keys": (N,) caption hashes, "context_i": (N, L_i, D_i) `dtype`,
    "context_mask_i": (N, L_i) bool, "meta": JSON of the encoder configs}.
    """
    if len(encoders) != len(tokenizers):
        raise ValueError(f"{len(encoders)} encoders but {len(tokenizers)} tokenizers")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    max_lengths = list(max_lengths or [_default_max_length(c) for c, _ in encoders])
    if len(max_lengths) != len(encoders):
        raise ValueError(f"{len(max_lengths)} max_lengths for {len(encoders)} encoders")
    unique = list(dict.fromkeys(captions))
    out: dict[str, np.ndarray] = {"keys": np.array([caption_key(c) for c in unique])}
    for i, ((cfg, params), tok, length) in enumerate(zip(encoders, tokenizers, max_lengths)):
        check_vocab(tok, cfg.vocab_size)
        fn = jax.jit(lambda p, ids, m, cfg=cfg: text_lib.encode_text(cfg, p, ids, m))
        contexts, masks = [], []
        for start in range(0, len(unique), batch_size):
            chunk = unique[start:start + batch_size]
            # Pad the last batch with empty captions so every call has the same shape (one compile).
            batch = tok(list(chunk) + [""] * (batch_size - len(chunk)), length)
            contexts.append(np.asarray(fn(params, batch.ids, batch.mask))[:len(chunk)].astype(dtype))
            masks.append(batch.mask[:len(chunk)])
        width = cfg.width
        out[f"context_{i}"] = np.concatenate(contexts) if contexts else np.zeros((0, length, width), dtype)
        out[f"context_mask_{i}"] = np.concatenate(masks) if masks else np.zeros((0, length), bool)
    out["meta"] = np.array(json.dumps([{"kind": text_lib.kind_of(c), "config": c.to_dict(), "max_length": n}
                                       for (c, _), n in zip(encoders, max_lengths)]))
    return out


def save_cache(path: str, cache: dict[str, np.ndarray]) -> None:
    """Write the dict from `encode_captions` to a .npz file."""
    np.savez(path, **cache)


class TextEmbeddingCache:
    """Looks up cached contexts by caption; unknown captions are a KeyError naming them."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.meta = json.loads(str(arrays["meta"]))
        self.index = {str(k): i for i, k in enumerate(arrays["keys"])}

    def __len__(self) -> int:
        return len(self.index)

    @property
    def num_encoders(self) -> int:
        return len(self.meta)

    def lookup(self, captions: Sequence[str]) -> dict[str, np.ndarray]:
        """-> {"context_i": (B, L_i, D_i), "context_mask_i": (B, L_i)} for each encoder i."""
        keys = [caption_key(c) for c in captions]
        missing = [c for c, k in zip(captions, keys) if k not in self.index]
        if missing:
            raise KeyError(f"{len(missing)} captions are not in the text-embedding cache, e.g. {missing[:3]}")
        rows = np.array([self.index[k] for k in keys], np.int64)
        return {f"{name}_{i}": self.arrays[f"{name}_{i}"][rows]
                for i in range(self.num_encoders) for name in ("context", "context_mask")}


def load_cache(path: str) -> TextEmbeddingCache:
    """Read a .npz written by `save_cache`."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    if "keys" not in arrays or "meta" not in arrays:
        raise ValueError(f"{path} is not a text-embedding cache (no 'keys' / 'meta' arrays)")
    return TextEmbeddingCache(arrays)
