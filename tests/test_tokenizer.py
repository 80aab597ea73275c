"""gpt1_lib.tokenizer: lossless round trip, special tokens, save/load, caching, bad input."""

from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from gpt1_lib import tokenizer_cache as cache_module
from gpt1_lib.corpus import CORPORA, holdout_start
from gpt1_lib.download import MIRROR_ENV
from gpt1_lib.openai_tokenizer import load_openai_tokenizer
from gpt1_lib.releases import fetch_release
from gpt1_lib.tokenizer import (
    EOS,
    EOS_ID,
    MIN_VOCAB_SIZE,
    PAD,
    PAD_ID,
    SPECIAL_TOKENS,
    decode,
    encode,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)
from gpt1_lib.tokenizer_cache import prepare_tokenizer, tokenizer_path

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


def _byte_level_bpe_by_hand(text: str, vocab_size: int) -> list[tuple[str, str]]:
    """Chapter 01's byte-level BPE, written out: GPT-2's chunks, recount every pair after each
    merge, and among equal counts take the pair of smallest token ids, as `tokenizers` does
    (byte tokens numbered in their stand-in characters' order, learned ones as they are made)."""
    split = pre_tokenizers.ByteLevel(add_prefix_space=False)
    words = Counter(tuple(chunk) for chunk, _ in split.pre_tokenize_str(text))
    ids = {
        c: i for i, c in enumerate([*SPECIAL_TOKENS, *sorted(pre_tokenizers.ByteLevel.alphabet())])
    }
    merges = []
    while len(ids) < vocab_size:
        counts = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                counts[pair] += n
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], ids[p[0]], ids[p[1]]))
        merges.append(best)
        ids.setdefault(best[0] + best[1], len(ids))
        merged = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if word[i : i + 2] == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = n
        words = merged
    return merges


def test_train_tokenizer_learns_exactly_the_merges_of_bpe_by_hand(tmp_path):
    text = make_text(300, seed=3) + "naïve café — 東京 🙂, 1,234 numbers; it's   spaced\tout\r\n"
    path = tmp_path / "small.txt"
    path.write_text(text, encoding="utf-8")
    trained = train_tokenizer(path, MIN_VOCAB_SIZE + 80)
    merges = json.loads(trained.to_str())["model"]["merges"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
    assert merges == _byte_level_bpe_by_hand(text, MIN_VOCAB_SIZE + 80)
    assert len(merges) == 80  # not cut short: the text has more pairs to merge


def test_special_tokens_have_fixed_ids_and_user_text_never_produces_them(tokenizer):
    """User text is always text: the letters of a special token are encoded as letters (a
    prompt or a task example cannot smuggle one in); the token itself goes in by its id."""
    assert (tokenizer.token_to_id(PAD), tokenizer.token_to_id(EOS)) == (PAD_ID, EOS_ID) == (0, 1)
    letters = encode(tokenizer, f"the end{EOS}{PAD}")
    assert PAD_ID not in letters and EOS_ID not in letters
    assert decode(tokenizer, letters) == f"the end{EOS}{PAD}"
    assert decode(tokenizer, encode(tokenizer, "the end") + [EOS_ID]) == f"the end{EOS}"
    assert decode(tokenizer, [PAD_ID, EOS_ID]) == PAD + EOS
    assert EOS_ID not in encode(tokenizer, "the end")  # encode adds no special token itself
    assert tokenizer.encode_special_tokens is False  # encode leaves the tokenizer as it was


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


@pytest.fixture(scope="module")
def training_part_tokenizer(corpus_file, tmp_path_factory) -> Tokenizer:
    """The tokenizer of the text before the held-out tenth, which pre-training validates on."""
    head = tmp_path_factory.mktemp("head") / "head.txt"
    head.write_bytes(corpus_file.read_bytes()[: holdout_start(corpus_file, 0.1)])
    return train_tokenizer(head, 400)


def test_prepare_tokenizer_trains_once_then_loads_the_cache(
    corpus_file, training_part_tokenizer, tmp_path, monkeypatch
):
    first = prepare_tokenizer(str(corpus_file), 400, tmp_path)
    cached = tokenizer_path(str(corpus_file), 400, tmp_path)
    assert cached.is_file() and cached.parent == tmp_path
    assert first.to_str() == training_part_tokenizer.to_str()

    def no_training(*args, **kwargs):
        raise AssertionError("prepare_tokenizer trained although a cached tokenizer exists")

    monkeypatch.setattr(cache_module, "train_tokenizer", no_training)
    assert prepare_tokenizer(str(corpus_file), 400, tmp_path).to_str() == first.to_str()


def test_prepare_tokenizer_retrains_over_a_corrupt_cache(
    corpus_file, training_part_tokenizer, tmp_path
):
    cached = tokenizer_path(str(corpus_file), 400, tmp_path)
    cached.write_text("not json")
    with pytest.warns(UserWarning, match="training it again"):
        again = prepare_tokenizer(str(corpus_file), 400, tmp_path)
    assert again.to_str() == training_part_tokenizer.to_str()
    assert load_tokenizer(cached).to_str() == training_part_tokenizer.to_str()


def test_prepare_tokenizer_never_trains_on_the_held_out_text(tmp_path):
    """The validation tail is as new to the tokenizer as to the model: a word that only the
    tail repeats gets no token of its own, though a tokenizer of the whole text learns it."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(make_text(900) + "zyzzogeton\n" * 100, encoding="utf-8")
    cut = holdout_start(corpus, 0.1)
    assert b"zyzzogeton" not in corpus.read_bytes()[:cut]
    whole = train_tokenizer(corpus, 400)
    prepared = prepare_tokenizer(str(corpus), 400, tmp_path / "work")
    assert whole.token_to_id("zyzzogeton") is not None
    assert prepared.token_to_id("zyzzogeton") is None
    assert len(encode(prepared, "zyzzogeton")) > 1
    # another held-out fraction is another tokenizer, cached under its own name
    other = tokenizer_path(str(corpus), 400, tmp_path / "work", val_fraction=0.2)
    assert other != tokenizer_path(str(corpus), 400, tmp_path / "work")
    assert "holdout0.1" in tokenizer_path(str(corpus), 400, tmp_path / "work").name


def test_a_corpus_with_its_own_validation_file_trains_on_its_whole_training_file(tmp_path):
    assert "holdout" not in tokenizer_path("tinystories", 8192, tmp_path).name
    assert "holdout0.1" in tokenizer_path("tinyshakespeare", 2048, tmp_path).name


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


# --- GPT-1's own tokenizer --------------------------------------------------------------------

RELEASE_FILES = ("encoder_bpe_40000.json", "vocab_40000.bpe")


@pytest.fixture(scope="module")
def openai_folder(tmp_path_factory) -> Path:
    """GPT-1's released tokenizer files, fetched through the mirror (offline) into tmp."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror or not (Path(mirror) / "openai-gpt-bpe" / RELEASE_FILES[0]).is_file():
        pytest.skip(f"needs {MIRROR_ENV} pointing at a mirror with openai-gpt-bpe/ (CI sets it)")
    return fetch_release("openai-gpt-bpe", data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def openai_tokenizer(openai_folder) -> Tokenizer:
    return load_openai_tokenizer(openai_folder)


@pytest.fixture(scope="module")
def reference(openai_folder):
    """transformers' OpenAIGPTTokenizer built from the same two files, read independently."""
    transformers = pytest.importorskip("transformers")
    vocab = json.loads((openai_folder / "encoder_bpe_40000.json").read_text(encoding="utf-8"))
    lines = (openai_folder / "vocab_40000.bpe").read_text(encoding="utf-8").split("\n")
    assert lines[0].startswith("#version")
    merges = [tuple(line.split()) for line in lines[1:] if line]
    return transformers.OpenAIGPTTokenizer(vocab=vocab, merges=merges)


LONG_PARAGRAPH = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. However little known the feelings or views of such a man may be "
    "on his first entering a neighbourhood, this truth is so well fixed in the minds of the "
    "surrounding families, that he is considered the rightful property of some one or other of "
    'their daughters.\n\n"My dear Mr. Bennet," said his lady to him one day, "have you heard '
    'that Netherfield Park is let at last?" Mr. Bennet replied that he had not. '
) * 8

OPENAI_TEXTS = [
    "",
    "ROMEO: But, soft! what light through yonder window breaks?",
    "UPPER lower MiXeD cAsE",
    "Don't panic: GPT-1 was trained on 7,000 unpublished books (in 2018).",
    "digits 0123456789 3.14159 1,000,000 +42 -7 #1 $9.99 50% a/b a_b a@b.com",
    "newlines\nand\ttabs\r\nand   runs   of spaces  \n\n",
    "naïve café résumé Ångström Œuvre façade Zoë São Paulo Düsseldorf",
    "non-ASCII symbols: — – … « » © ® ™ € £ ¥ ° ± × ÷ ∞ ≠ → ♥ ♪",
    "Ωμέγα Привет 東京 مرحبا שלום हिन्दी",
    "an emoji 🙂 and a flag 🇫🇷 and a family 👨‍👩‍👧",
    "control \x00\x01 bytes \x7f and a zero-width\u200bspace",
    "<unk> <pad> </w> <|endoftext|> literal specials",
    LONG_PARAGRAPH,
]


@pytest.mark.parametrize("text", OPENAI_TEXTS)
def test_openai_tokenizer_encodes_and_decodes_exactly_as_transformers(
    openai_tokenizer, reference, text
):
    ours = openai_tokenizer.encode(text, add_special_tokens=False)
    theirs = reference(text, add_special_tokens=False)["input_ids"]
    assert ours.ids == theirs
    assert ours.tokens == reference.convert_ids_to_tokens(theirs)
    assert openai_tokenizer.decode(ours.ids, skip_special_tokens=False) == reference.decode(theirs)
    assert openai_tokenizer.decode(ours.ids) == reference.decode(theirs, skip_special_tokens=True)


def test_openai_tokenizer_is_built_as_transformers_builds_its_backend(openai_tokenizer, reference):
    ours = json.loads(openai_tokenizer.to_str())
    theirs = json.loads(reference.backend_tokenizer.to_str())
    theirs.pop("post_processor")  # transformers adds a template that adds nothing to one text
    assert ours.pop("post_processor") is None
    assert ours == theirs


def test_the_comparison_covers_what_it_claims(openai_tokenizer):
    """Guard the test texts themselves: they do reach `<unk>`, long input and the empty case."""
    ids = [openai_tokenizer.encode(t, add_special_tokens=False).ids for t in OPENAI_TEXTS]
    assert ids[0] == [] and len(ids[-1]) > 500
    assert sum(i.count(0) for i in ids) > 10  # many characters outside GPT-1's alphabet


def test_openai_tokenizer_facts(openai_tokenizer):
    vocab = openai_tokenizer.get_vocab()
    assert openai_tokenizer.get_vocab_size() == len(vocab) == 40_478
    assert (vocab["<unk>"], vocab["."]) == (0, 1)
    specials = [
        t for t in vocab if t.startswith("<") and t.endswith(">") and not t.endswith("</w>")
    ]
    assert specials == ["<unk>"]  # no end-of-text token of any spelling
    assert not {"<|endoftext|>", "</s>", "<s>", "<eos>", "<pad>"} & set(vocab)
    tokens = openai_tokenizer.encode("Hello World 🙂", add_special_tokens=False).tokens
    assert tokens == ["hello</w>", "world</w>", "<unk>"]
    assert openai_tokenizer.encode("a<unk>b").ids == [vocab["a</w>"], 0, vocab["b</w>"]]
    assert openai_tokenizer.decode(openai_tokenizer.encode("Hello,World!").ids) == "hello , world !"


def test_openai_tokenizer_reads_a_hub_checkout_too(openai_folder, openai_tokenizer, tmp_path):
    hub = tmp_path / "hub"
    hub.mkdir()
    shutil.copy(openai_folder / "encoder_bpe_40000.json", hub / "vocab.json")
    shutil.copy(openai_folder / "vocab_40000.bpe", hub / "merges.txt")
    assert load_openai_tokenizer(hub).to_str() == openai_tokenizer.to_str()
    assert load_openai_tokenizer(str(hub)).encode(LONG_PARAGRAPH).ids == (
        openai_tokenizer.encode(LONG_PARAGRAPH).ids
    )


@pytest.mark.parametrize(
    "present", [(), ("encoder_bpe_40000.json",), ("vocab.json", "vocab_40000.bpe")]
)
def test_openai_tokenizer_refuses_a_folder_without_both_files(tmp_path, present):
    for name in present:
        (tmp_path / name).write_text("{}")
    with pytest.raises(FileNotFoundError, match="holds no GPT-1 tokenizer: .*fetch_release"):
        load_openai_tokenizer(tmp_path)
