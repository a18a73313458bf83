"""Tokenizers: same ids as transformers for CLIP BPE and sentencepiece, padding, truncation, vocab check."""

import warnings

import pytest

from emu_jax.models import tokenizers as tk
from emu_test_utils import write_clip_tokenizer

CAPTIONS = ["the cat", "The  DOG ate the cat", "a b c d e f g h i j k l m n o p"]


def test_clip_bpe_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    vocab = write_clip_tokenizer(tmp_path)
    ref = transformers.CLIPTokenizer.from_pretrained(str(tmp_path))
    want = ref(CAPTIONS, padding="max_length", max_length=10, truncation=True)
    with pytest.warns(UserWarning, match=r"dropped 8 tokens: 'i j k l m n o p'"):
        got = tk.load_tokenizer(str(tmp_path))(CAPTIONS, 10)
    assert got.ids.tolist() == want["input_ids"]
    assert got.ids[0, 0] == vocab["<|startoftext|>"] and got.ids[2, -1] == vocab["<|endoftext|>"]
    assert got.mask.sum(1).tolist() == [4, 9, 10]
    # The tokenizer.json transformers writes loads to the same ids.
    out = tmp_path / "saved"
    ref.save_pretrained(str(out))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert tk.load_tokenizer(str(out))(CAPTIONS, 10).ids.tolist() == got.ids.tolist()


def test_sentencepiece_matches_transformers_t5(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    transformers = pytest.importorskip("transformers")
    text = ["a photo of a cat", "a dog runs on the beach", "the cat sleeps", "two birds fly over the sea"] * 20
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text),
        model_prefix=str(tmp_path / "spiece"),
        vocab_size=30,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2,
    )
    tok = tk.load_tokenizer(str(tmp_path))
    assert isinstance(tok, tk.SentencePieceTokenizer) and tok.vocab_size == 30
    caps = ["a cat", "the dog runs on the beach with two birds"]
    with pytest.warns(UserWarning, match="truncated to 8 tokens"):
        got = tok(caps, 8)
    # transformers' T5 tokenizer built from the model's pieces and scores: loading spiece.model itself needs
    # a protobuf runtime >= transformers' gencode (7.x), while apache-beam (test extra) pins protobuf < 7.
    # The captions are plain ASCII, so the model's NFKC charsmap (not carried over) changes nothing.
    proc = spm.SentencePieceProcessor(model_file=str(tmp_path / "spiece.model"))
    vocab = [(proc.id_to_piece(i), proc.get_score(i)) for i in range(proc.get_piece_size())]
    ref = transformers.T5Tokenizer(vocab=vocab, extra_ids=0)
    assert got.ids.tolist() == ref(caps, padding="max_length", max_length=8, truncation=True)["input_ids"]
    assert got.ids[1, -1] == 1 and got.ids[0, -1] == 0  # EOS kept on truncation; pad id 0


def test_byte_tokenizer_pads_truncates_and_roundtrips():
    tok = tk.ByteTokenizer()
    b = tok(["hé", ""], 6)
    assert b.ids.dtype.name == "int32" and b.mask.dtype == bool
    assert b.ids[0].tolist() == [257, 104, 0xC3, 0xA9, 258, 256]
    assert b.mask.tolist() == [[True] * 5 + [False], [True, True] + [False] * 4]
    assert tok.decode(b.ids[0]) == "hé"
    with pytest.warns(UserWarning, match=r"dropped 3 tokens: 'def'"):
        t = tok(["abcdef"], 5)
    assert t.ids[0].tolist() == [257, 97, 98, 99, 258]
    with pytest.raises(TypeError, match="list of captions"):
        tok("abc", 5)


def test_vocab_mismatch_and_missing_files(tmp_path):
    tk.check_vocab(tk.ByteTokenizer(), 259)
    with pytest.raises(ValueError, match=r"vocabulary size 259 exceeds .* vocab_size 100"):
        tk.check_vocab(tk.ByteTokenizer(), 100)
    with pytest.raises(FileNotFoundError, match=r"expected one of .*tokenizer.json.*spiece.model"):
        tk.load_tokenizer(str(tmp_path))


def test_word_tokenizer_one_id_per_word_and_round_trips_through_its_file(tmp_path):
    words = ("a", "big", "dog", "runs", "left", "up-left")
    tok = tk.WordTokenizer(words)
    assert tok.vocab_size == len(words) + 4 and tok.eos_id == tok.vocab_size - 1  # EOS largest
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every word is in the vocabulary
        b = tok(["a big dog runs up-left", "A DOG runs left"], 8)
    assert b.mask.sum(1).tolist() == [7, 6]
    assert [tok.decode(row) for row in b.ids] == ["a big dog runs up-left", "a dog runs left"]
    assert len({tok.ids[w] for w in words}) == len(words)
    with pytest.warns(UserWarning, match=r"become <unk>: \['purple', 'cat'\]"):
        u = tok(["A PURPLE cat runs"], 8)
    assert u.ids[0, :5].tolist() == [tok.bos_id, tok.ids["a"], 1, 1, tok.ids["runs"]]
    tok.save(tmp_path / "tok")
    back = tk.load_tokenizer(str(tmp_path / "tok"))
    assert isinstance(back, tk.WordTokenizer) and back.words == tok.words and back.ids == tok.ids
    with pytest.raises(ValueError, match="without whitespace"):
        tk.WordTokenizer(["ok", "two words"])
    with pytest.raises(FileNotFoundError, match=r"built-in name: \[.byte.\]"):
        tk.load_tokenizer("no_such_tokenizer")
