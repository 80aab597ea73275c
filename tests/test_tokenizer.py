"""gpt1_lib.tokenizer: lossless round trip, special tokens, save/load, caching, bad input."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from gpt1_lib import tokenizer as tok_module
from gpt1_lib.corpus import CORPORA
from gpt1_lib.tokenizer import (
    EOS,
    EOS_ID,
    MIN_VOCAB_SIZE,
    PAD,
    PAD_ID,
    decode,
    encode,
    load_tokenizer,
    prepare_tokenizer,
    save_tokenizer,
    tokenizer_path,
    train_tokenizer,
)

WORDS = "the king queen lord of to and my thou art thee shall love death night day sweet".split()


def make_text(n_lines: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = rng.choices(WORDS, k=rng.randint(3, 10))
        lines.append(" ".join(words).capitalize() + rng.choice([".", ",", "!", "?", ";"]))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "verse.txt"
    path.write_text(make_text(3000), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer(corpus_file) -> Tokenizer:
    return train_tokenizer(corpus_file, 400)


UNSEEN = [
    "",
    "To be, or not to be: that is the question.",
    "naïve café — 東京 🙂 Ωμέγα",
    "tabs\tand\r\nwindows line endings\r\n",
    "   leading, trailing and   inner   spaces   ",
    "\x00\x01 control bytes \x7f",
    "<pad><eos> literal special tokens <unk> <|endoftext|>",
    "".join(chr(c) for c in range(32, 0x250)),
]


@pytest.mark.parametrize("text", UNSEEN)
def test_round_trip_is_exact_even_for_text_never_seen(tokenizer, text):
    assert decode(tokenizer, encode(tokenizer, text)) == text


def test_round_trip_on_the_whole_training_text(tokenizer, corpus_file):
    text = corpus_file.read_bytes().decode("utf-8")
    ids = encode(tokenizer, text)
    assert decode(tokenizer, ids) == text
    assert len(ids) < len(text.encode()) / 2  # the learned merges actually compress


def test_special_tokens_have_fixed_ids_and_stay_whole(tokenizer):
    assert (tokenizer.token_to_id(PAD), tokenizer.token_to_id(EOS)) == (PAD_ID, EOS_ID) == (0, 1)
    ids = encode(tokenizer, f"the end{EOS}")
    assert ids[-1] == EOS_ID and EOS_ID not in ids[:-1]
    assert encode(tokenizer, PAD) == [PAD_ID]
    assert decode(tokenizer, [PAD_ID, EOS_ID]) == PAD + EOS
    assert EOS_ID not in encode(tokenizer, "the end")  # encode adds no special token itself


def test_every_byte_is_in_the_vocabulary(tokenizer):
    vocab = tokenizer.get_vocab()
    assert all(ch in vocab for ch in pre_tokenizers.ByteLevel.alphabet())
    assert MIN_VOCAB_SIZE <= tokenizer.get_vocab_size() <= 400


def test_training_is_deterministic(corpus_file, tokenizer):
    assert train_tokenizer([corpus_file], 400).to_str() == tokenizer.to_str()


def test_the_smallest_vocabulary_is_bytes_plus_special_tokens(corpus_file):
    smallest = train_tokenizer(corpus_file, MIN_VOCAB_SIZE)
    assert smallest.get_vocab_size() == MIN_VOCAB_SIZE == 258
    text = "thou art 🙂"
    assert len(encode(smallest, text)) == len(text.encode())  # one token per byte
    assert decode(smallest, encode(smallest, text)) == text


def test_decode_accepts_arrays_and_tensors_and_rejects_unknown_ids(tokenizer):
    ids = encode(tokenizer, "sweet night")
    assert decode(tokenizer, np.array(ids)) == decode(tokenizer, torch.tensor(ids)) == "sweet night"
    with pytest.raises(ValueError, match="outside this tokenizer's vocabulary"):
        decode(tokenizer, [tokenizer.get_vocab_size()])
    with pytest.raises(TypeError, match="takes a str"):
        encode(tokenizer, b"bytes")


# --- bad training input -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 2, 257])
def test_a_vocabulary_too_small_for_bytes_and_special_tokens_is_refused(corpus_file, size):
    with pytest.raises(ValueError, match=f"vocab_size {size} is too small: .* at least 258"):
        train_tokenizer(corpus_file, size)


def test_a_vocabulary_size_that_is_not_an_int_is_refused(corpus_file):
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        train_tokenizer(corpus_file, "512")


def test_an_empty_training_file_is_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.touch()
    with pytest.raises(ValueError, match="empty.txt is empty"):
        train_tokenizer(empty, 300)


def test_a_non_utf8_training_file_is_refused(tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("thou art déjà here".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt is not UTF-8 text .*offset 10"):
        train_tokenizer(latin1, 300)


def test_a_file_cut_inside_a_character_is_refused(tmp_path):
    cut = tmp_path / "cut.txt"
    cut.write_bytes("night 🙂".encode()[:-1])
    with pytest.raises(ValueError, match="not UTF-8 text"):
        train_tokenizer(cut, 300)


def test_missing_files_or_no_files_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no text file at"):
        train_tokenizer(tmp_path / "nope.txt", 300)
    with pytest.raises(ValueError, match="no training files given"):
        train_tokenizer([], 300)


# --- save, load, cache ------------------------------------------------------------------------


def test_save_then_load_gives_the_same_tokenizer_and_no_stray_files(tokenizer, tmp_path):
    path = tmp_path / "tok" / "tokenizer.json"
    save_tokenizer(tokenizer, path)
    assert load_tokenizer(path).to_str() == tokenizer.to_str()
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]


def test_a_failed_save_leaves_the_previous_file_intact(tokenizer, tmp_path):
    path = tmp_path / "tokenizer.json"
    save_tokenizer(tokenizer, path)

    class Crashing:
        def save(self, target):
            Path(target).write_text('{"half": ')
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_tokenizer(Crashing(), path)
    assert load_tokenizer(path).to_str() == tokenizer.to_str()
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]


def test_loading_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer at .*prepare_tokenizer"):
        load_tokenizer(tmp_path / "none.json")


def test_loading_a_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "1.0", "model": ')
    with pytest.raises(ValueError, match="bad.json is not a readable tokenizer file"):
        load_tokenizer(bad)


def test_loading_a_tokenizer_with_other_special_tokens_is_refused(corpus_file, tmp_path):
    other = Tokenizer(models.BPE())
    other.pre_tokenizer = pre_tokenizers.ByteLevel()
    other.train([str(corpus_file)], trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>"]))
    other.save(str(tmp_path / "other.json"))
    with pytest.raises(ValueError, match="<pad> and <eos> must have ids 0 and 1"):
        load_tokenizer(tmp_path / "other.json")


def test_prepare_tokenizer_trains_once_then_loads_the_cache(corpus_file, tokenizer, tmp_path, monkeypatch):
    first = prepare_tokenizer(str(corpus_file), 400, tmp_path)
    cached = tokenizer_path(str(corpus_file), 400, tmp_path)
    assert cached.is_file() and cached.parent == tmp_path
    assert first.to_str() == tokenizer.to_str()

    def no_training(*args, **kwargs):
        raise AssertionError("prepare_tokenizer trained although a cached tokenizer exists")

    monkeypatch.setattr(tok_module, "train_tokenizer", no_training)
    assert prepare_tokenizer(str(corpus_file), 400, tmp_path).to_str() == first.to_str()


def test_prepare_tokenizer_retrains_over_a_corrupt_cache(corpus_file, tokenizer, tmp_path):
    cached = tokenizer_path(str(corpus_file), 400, tmp_path)
    cached.write_text("not json")
    with pytest.warns(UserWarning, match="training it again"):
        again = prepare_tokenizer(str(corpus_file), 400, tmp_path)
    assert again.to_str() == tokenizer.to_str()
    assert load_tokenizer(cached).to_str() == tokenizer.to_str()


def test_prepare_tokenizer_with_a_sample_trains_on_whole_lines_of_the_start(corpus_file, tmp_path):
    data = corpus_file.read_bytes()
    sample_bytes = 20_001
    head = data[: data.rfind(b"\n", 0, sample_bytes) + 1]
    expected_file = tmp_path / "head.txt"
    expected_file.write_bytes(head)
    sampled = prepare_tokenizer(str(corpus_file), 300, tmp_path / "work", sample_bytes=sample_bytes)
    assert sampled.to_str() == train_tokenizer(expected_file, 300).to_str()
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [
        tokenizer_path(str(corpus_file), 300, tmp_path / "work", sample_bytes).name
    ]  # the temporary sample file is gone


def test_a_sample_cut_inside_a_character_drops_only_that_character(tmp_path):
    one_line = tmp_path / "one_line.txt"
    one_line.write_text("é" * 5000, encoding="utf-8")  # 2 bytes per character, no newline
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampled = prepare_tokenizer(str(one_line), 300, tmp_path / "work", sample_bytes=1001)
    assert decode(sampled, encode(sampled, "é" * 7)) == "é" * 7


def test_prepare_tokenizer_rejects_unknown_corpora_and_bad_sizes(tmp_path):
    known = ", ".join(sorted(CORPORA))
    with pytest.raises(ValueError, match=f"unknown corpus 'nope': use one of {known}"):
        prepare_tokenizer("nope", 512, tmp_path)
    with pytest.raises(ValueError, match="too small"):
        prepare_tokenizer("tinyshakespeare", 100, tmp_path)
    with pytest.raises(ValueError, match="sample_bytes must be positive"):
        prepare_tokenizer("tinyshakespeare", 512, tmp_path, sample_bytes=0)
    assert list(tmp_path.iterdir()) == []
