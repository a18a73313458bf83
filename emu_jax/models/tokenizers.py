"""Tokenizers behind one interface: `tok(texts, max_length) -> TokenBatch(ids, mask)`.

Loaded from the files that ship with a checkpoint, never from the network:
`tokenizer.json` (tokenizers), CLIP's `vocab.json` + `merges.txt` (the same
BPE pipeline as transformers' CLIPTokenizer), `spiece.model` (sentencepiece,
T5), `words.txt` (a closed word list, one id per word). Built in, named instead
of a folder: `byte` (UTF-8 bytes + pad/bos/eos, 259 ids), the offline default
for small configs. Every tokenizer pads to `max_length`; truncation keeps the
trailing special tokens (EOS) and warns with the dropped text.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from typing import Sequence

import numpy as np

TOKENIZER_FILES = ("tokenizer.json", "vocab.json + merges.txt", "spiece.model", "words.txt")
WORDS_FILE = "words.txt"


@dataclasses.dataclass(frozen=True)
class TokenBatch:
    """ids (B, L) int32 padded with the pad id; mask (B, L) bool, True on real tokens."""

    ids: np.ndarray
    mask: np.ndarray


class Tokenizer:
    """Base: subclasses give `vocab_size`, `pad_id`, `_encode(text)` (with special tokens), `decode`."""

    vocab_size: int
    pad_id: int
    n_prefix: int = 0  # special tokens before the text (CLIP: BOS)
    n_suffix: int = 1  # special tokens after the text, kept on truncation (EOS)

    def _encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def encode(self, text: str, max_length: int) -> list[int]:
        """Ids with special tokens, truncated to `max_length` (warning shows the dropped text)."""
        full = self._encode(text)
        if len(full) <= max_length:
            return full
        keep = max_length - self.n_suffix
        if keep < self.n_prefix:
            raise ValueError(
                f"max_length {max_length} leaves no room for the {self.n_prefix + self.n_suffix} special tokens"
            )
        dropped = full[keep : len(full) - self.n_suffix]
        warnings.warn(
            f"caption truncated to {max_length} tokens; dropped {len(dropped)} tokens: {self.decode(dropped)!r}",
            stacklevel=3,
        )
        return full[:keep] + full[len(full) - self.n_suffix :]

    def __call__(self, texts: Sequence[str], max_length: int) -> TokenBatch:
        if isinstance(texts, str):
            raise TypeError("pass a list of captions, not a single string")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        ids = np.full((len(texts), max_length), self.pad_id, np.int32)
        mask = np.zeros((len(texts), max_length), bool)
        for i, text in enumerate(texts):
            row = self.encode(text, max_length)
            ids[i, : len(row)] = row
            mask[i, : len(row)] = True
        return TokenBatch(ids, mask)


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes as ids 0..255, then pad 256, bos 257, eos 258 (EOS is the largest id, which
    CLIP's legacy argmax pooling also finds)."""

    vocab_size = 259
    pad_id, bos_id, eos_id = 256, 257, 258
    n_prefix, n_suffix = 1, 1

    def _encode(self, text: str) -> list[int]:
        return [self.bos_id] + list(text.encode("utf-8")) + [self.eos_id]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(int(i) for i in ids if int(i) < 256).decode("utf-8", errors="replace")


class WordTokenizer(Tokenizer):
    """Closed-vocabulary words split on whitespace (lower-cased): pad 0, unk 1, the words, then bos
    and eos (EOS is the largest id, as in `ByteTokenizer`). For captions from a fixed grammar, where
    one id per word spares a small text encoder from learning to spell."""

    n_prefix, n_suffix = 1, 1
    pad_id, unk_id = 0, 1

    def __init__(self, words: Sequence[str]):
        words = list(dict.fromkeys(w.lower() for w in words))
        bad = [w for w in words if not w or any(c.isspace() for c in w)]
        if bad:
            raise ValueError(f"vocabulary words must be non-empty and without whitespace, got {bad}")
        self.words = words
        self.ids = {w: i + 2 for i, w in enumerate(words)}
        self._names = {i: w for w, i in self.ids.items()} | {self.unk_id: "<unk>"}
        self.bos_id, self.eos_id = len(words) + 2, len(words) + 3
        self.vocab_size = len(words) + 4

    def _encode(self, text: str) -> list[int]:
        tokens = text.lower().split()
        unknown = [t for t in tokens if t not in self.ids]
        if unknown:
            warnings.warn(
                f"words outside the tokenizer's {len(self.words)}-word vocabulary become <unk>: {unknown}", stacklevel=4
            )
        return [self.bos_id] + [self.ids.get(t, self.unk_id) for t in tokens] + [self.eos_id]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self._names[int(i)] for i in ids if int(i) in self._names)

    def save(self, folder: str | os.PathLike) -> None:
        """Writes `folder/words.txt` (one word a line, in id order), which `load_tokenizer(folder)` reads."""
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, WORDS_FILE), "w", encoding="utf-8") as f:
            f.write("".join(w + "\n" for w in self.words))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "WordTokenizer":
        with open(path, encoding="utf-8") as f:
            return cls([line.strip() for line in f if line.strip()])


BUILTIN = {"byte": ByteTokenizer}


class HFTokenizer(Tokenizer):
    """A `tokenizers.Tokenizer` (from tokenizer.json or built for CLIP BPE) with its post-processor."""

    def __init__(self, tok, pad_token: str | None = None):
        self.tok = tok
        tok.no_truncation()
        tok.no_padding()
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)
        pad = tok.token_to_id(pad_token) if pad_token else None
        self.pad_id = int(pad if pad is not None else 0)
        # Count the special tokens the post-processor adds around a text, for truncation.
        plain = tok.encode("a", add_special_tokens=False).ids
        full = tok.encode("a").ids
        start = next((i for i in range(len(full)) if full[i : i + len(plain)] == plain), 0)
        self.n_prefix, self.n_suffix = start, len(full) - start - len(plain)

    def _encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def decode(self, ids: Sequence[int]) -> str:
        text = self.tok.decode([int(i) for i in ids], skip_special_tokens=True)
        suffix = getattr(self.tok.model, "end_of_word_suffix", None)  # CLIP BPE marks word ends
        return text.replace(suffix, " ").strip() if suffix else text


class SentencePieceTokenizer(Tokenizer):
    """T5's `spiece.model`: pieces + EOS, padded with the model's pad id."""

    def __init__(self, path: str):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=path)
        self.vocab_size = self.sp.get_piece_size()
        self.pad_id = max(self.sp.pad_id(), 0)
        self.eos_id = self.sp.eos_id()
        self.n_suffix = 1 if self.eos_id >= 0 else 0

    def _encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text)) + ([self.eos_id] if self.eos_id >= 0 else [])

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode([int(i) for i in ids])


def clip_bpe(vocab_path: str, merges_path: str, unk="<|endoftext|>", bos="<|startoftext|>", eos="<|endoftext|>"):
    """CLIP's byte-level BPE as a `tokenizers.Tokenizer`, built like transformers' CLIPTokenizer."""
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers, processors
    from tokenizers import Tokenizer as _Tok
    from tokenizers.models import BPE

    with open(vocab_path, encoding="utf-8") as f:
        vocab = json.load(f)
    with open(merges_path, encoding="utf-8") as f:
        merges = [
            tuple(line.split()) for line in f.read().split("\n") if line.strip() and not line.startswith("#version")
        ]
    tok = _Tok(
        BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="</w>",
            fuse_unk=False,
            unk_token=unk,
        )
    )
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(
                    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|"""
                    r"""[\p{N}]|[^\s\p{L}\p{N}]+"""
                ),
                behavior="removed",
                invert=True,
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    for special in {bos, eos, unk}:
        if special in vocab:
            tok.add_special_tokens([special])
    tok.post_processor = processors.RobertaProcessing((eos, vocab[eos]), (bos, vocab[bos]), False, False)
    return tok


def _special_tokens(folder: str) -> dict[str, str]:
    """pad/bos/eos/unk token strings from tokenizer_config.json / special_tokens_map.json, if present."""
    out: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
            for key in ("pad_token", "bos_token", "eos_token", "unk_token"):
                v = d.get(key)
                v = v.get("content") if isinstance(v, dict) else v
                if isinstance(v, str):
                    out.setdefault(key, v)
    return out


def load_tokenizer(path: str) -> Tokenizer:
    """A built-in name (`BUILTIN`: 'byte'), else a folder with tokenizer.json, vocab.json + merges.txt,
    spiece.model or words.txt."""
    if path in BUILTIN:
        return BUILTIN[path]()
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"tokenizer folder {path!r} does not exist (or pass a built-in name: {sorted(BUILTIN)})"
        )
    special = _special_tokens(path)
    join = lambda n: os.path.join(path, n)  # noqa: E731
    if os.path.isfile(join("tokenizer.json")):
        from tokenizers import Tokenizer as _Tok

        return HFTokenizer(_Tok.from_file(join("tokenizer.json")), special.get("pad_token"))
    if os.path.isfile(join("vocab.json")) and os.path.isfile(join("merges.txt")):
        kw = {k: special[f"{k}_token"] for k in ("unk", "bos", "eos") if f"{k}_token" in special}
        return HFTokenizer(
            clip_bpe(join("vocab.json"), join("merges.txt"), **kw),
            special.get("pad_token", kw.get("eos", "<|endoftext|>")),
        )
    if os.path.isfile(join("spiece.model")):
        return SentencePieceTokenizer(join("spiece.model"))
    if os.path.isfile(join(WORDS_FILE)):
        return WordTokenizer.from_file(join(WORDS_FILE))
    raise FileNotFoundError(
        f"no tokenizer in {path!r}: expected one of {list(TOKENIZER_FILES)}; "
        f"found {sorted(os.listdir(path))}; built-in names: {sorted(BUILTIN)}"
    )


def check_vocab(tokenizer: Tokenizer, model_vocab_size: int) -> None:
    """ValueError when the tokenizer can emit ids the model's embedding table does not have."""
    if tokenizer.vocab_size > model_vocab_size:
        raise ValueError(
            f"tokenizer vocabulary size {tokenizer.vocab_size} exceeds the text encoder's "
            f"vocab_size {model_vocab_size}; the tokenizer does not belong to this model"
        )
