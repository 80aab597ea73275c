"""gpt1_lib.data: token-id files on disk and random contiguous windows (chapter 05)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from training_helpers import make_corpus

import gpt1_lib.token_cache as token_cache
from gpt1_lib.data import DataError, Windows, token_dtype
from gpt1_lib.token_cache import CONTENT_IDS, content_id, corpus_files, prepare_tokens


def byte_tokenizer() -> Tokenizer:
    """Byte-level tokenizer without merges: every byte one id, so decoding is exact."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


class BigVocab:
    """A tokenizer stand-in with more than 65,536 ids (ids above 2**16 must survive)."""

    def get_vocab_size(self) -> int:
        return 70_000

    def to_str(self) -> str:
        return "big-vocab"

    def encode_batch(self, lines, add_special_tokens=True):
        class Encoding:
            def __init__(self, ids):
                self.ids = ids

        return [Encoding([65_536 + len(line), len(line)]) for line in lines]


def read_ids(path, dtype) -> np.ndarray:
    return np.fromfile(path, dtype=dtype)


def test_token_dtype_is_the_narrowest_that_fits():
    assert token_dtype(2048) == np.uint16
    assert token_dtype(40478) == np.uint16  # GPT-1's vocabulary fits in 16 bits
    assert token_dtype(65536) == np.uint16  # ids 0..65535
    assert token_dtype(65537) == np.uint32


def test_token_files_hold_the_whole_text_split_at_a_line(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt", n_lines=400)
    tok = byte_tokenizer()
    files = prepare_tokens(str(corpus), tok, tmp_path / "work", val_fraction=0.1, progress=False)
    train, val = read_ids(files.train, files.dtype), read_ids(files.val, files.dtype)
    assert files.dtype == "uint16"
    text = corpus.read_text()
    assert tok.decode(train.tolist()) + tok.decode(val.tolist()) == text  # nothing lost or added
    assert tok.decode(train.tolist()).endswith("\n")  # the split falls at a line break
    assert 0.07 < len(val) / (len(train) + len(val)) < 0.13


def test_chunked_encoding_equals_one_pass(tmp_path, monkeypatch):
    """Streaming a corpus in small chunks (as for one larger than memory) changes nothing."""
    corpus = make_corpus(tmp_path / "corpus.txt", n_lines=300)
    tok = byte_tokenizer()
    whole = prepare_tokens(str(corpus), tok, tmp_path / "a", progress=False)
    real = token_cache._encode_range
    monkeypatch.setattr(token_cache, "_encode_range", lambda *a: real(*a, chunk_bytes=97))
    chunked = prepare_tokens(str(corpus), tok, tmp_path / "b", progress=False)
    for split in ("train", "val"):
        a = read_ids(getattr(whole, split), whole.dtype)
        b = read_ids(getattr(chunked, split), chunked.dtype)
        assert np.array_equal(a, b)


def test_token_files_are_cached_and_rebuilt_when_the_corpus_changes(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt", n_lines=200)
    tok = byte_tokenizer()
    first = prepare_tokens(str(corpus), tok, tmp_path / "work", progress=False)
    mtime = first.train.stat().st_mtime_ns
    assert prepare_tokens(str(corpus), tok, tmp_path / "work", progress=False) == first
    assert first.train.stat().st_mtime_ns == mtime  # reused, not rewritten
    make_corpus(corpus, n_lines=250, seed=1)
    second = prepare_tokens(str(corpus), tok, tmp_path / "work", progress=False)
    assert second.train != first.train
    assert not list((tmp_path / "work").rglob("*.tmp"))


def count_encodings(monkeypatch) -> list[int]:
    """Count the calls of the tokenizing step (one per split tokenized)."""
    calls, real = [], token_cache._encode_range
    monkeypatch.setattr(
        token_cache, "_encode_range", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    return calls


def test_the_same_text_at_another_path_and_time_reuses_the_token_files(tmp_path, monkeypatch):
    """A fresh Colab runtime downloads the corpus again: a new path, a new mtime, the same
    bytes. The cache is keyed by the content, so nothing is tokenized again."""
    tok, work = byte_tokenizer(), tmp_path / "work"
    (tmp_path / "session1").mkdir()
    first_copy = make_corpus(tmp_path / "session1" / "corpus.txt", n_lines=300)
    first = prepare_tokens(str(first_copy), tok, work, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in (first.train, first.val)}
    (tmp_path / "session2").mkdir()
    second_copy = tmp_path / "session2" / "corpus.txt"
    shutil.copyfile(first_copy, second_copy)
    os.utime(second_copy, ns=(1, 1))  # another modification time, too
    shutil.rmtree(tmp_path / "session1")  # the old runtime's disk is gone
    calls = count_encodings(monkeypatch)
    again = prepare_tokens(str(second_copy), tok, work, progress=False)
    assert again == first and calls == []  # the same files, not one byte tokenized
    assert {p: p.stat().st_mtime_ns for p in (again.train, again.val)} == stamps  # untouched
    hashed = []  # and the text is hashed once per place, then remembered
    monkeypatch.setattr(token_cache, "sha256_of", lambda p: hashed.append(p) or "x" * 64)
    assert prepare_tokens(str(second_copy), tok, work, progress=False) == first and not hashed


def test_a_pinned_checksum_is_used_without_reading_the_file(tmp_path, monkeypatch):
    corpus = make_corpus(tmp_path / "corpus.txt", n_lines=20)
    monkeypatch.setattr(token_cache, "sha256_of", lambda p: pytest.fail("a pinned file was hashed"))
    pin = "ab" * 32
    assert content_id(corpus, pin, tmp_path) == f"{corpus.stat().st_size}:{pin}"


def test_a_content_id_is_the_size_and_sha256(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt", n_lines=20)
    digest = hashlib.sha256(corpus.read_bytes()).hexdigest()
    assert content_id(corpus, memo_dir=tmp_path) == f"{corpus.stat().st_size}:{digest}"
    corpus.write_text(corpus.read_text().upper())  # the same size, another text
    assert content_id(corpus, memo_dir=tmp_path).split(":")[1] != digest


def test_a_changed_text_is_tokenized_again_and_its_old_files_removed(tmp_path, monkeypatch):
    tok, work = byte_tokenizer(), tmp_path / "work"
    corpus = make_corpus(tmp_path / "corpus.txt", n_lines=300)
    old = prepare_tokens(str(corpus), tok, work, progress=False)
    other_tok = prepare_tokens(str(corpus), BigVocab(), work, progress=False)  # another recipe
    (tmp_path / "b").mkdir()
    other_text = prepare_tokens(str(make_corpus(tmp_path / "b" / "corpus.txt", seed=2)), tok, work,
                                progress=False)  # fmt: skip  # another file with the same name
    stale = work / "tokens" / "corpus-0123456789abcdef.train.bin.tmp"  # a killed run's
    stale.write_bytes(b"\0" * 100)
    make_corpus(corpus, n_lines=300, seed=1)
    calls = count_encodings(monkeypatch)
    new = prepare_tokens(str(corpus), tok, work, progress=False)
    assert len(calls) == 2 and new.train != old.train  # train and val tokenized again
    ids = read_ids(new.train, new.dtype)
    assert tok.decode(ids.tolist()) == corpus.read_text()[: len(tok.decode(ids.tolist()))]
    assert not old.train.exists() and not old.val.exists() and not stale.exists()
    assert not old.train.with_name(old.train.name.replace(".train.bin", ".json")).exists()
    for kept in (other_tok, other_text, new):  # still valid: kept
        assert kept.train.is_file() and kept.val.is_file()


def test_a_full_disk_while_tokenizing_leaves_nothing_to_reuse(tmp_path, monkeypatch):
    """The disk fills up in the middle of writing the ids: one line says how much room is
    needed, no partial file is left, and the next run tokenizes everything."""
    tok, work = byte_tokenizer(), tmp_path / "work"
    corpus = make_corpus(tmp_path / "corpus.txt", n_lines=2000)
    writes, real_open = [], open

    class FillsTheDisk:
        """A file being written whose third write finds the disk full, half-way through."""

        def __init__(self, f) -> None:
            self.f = f

        def write(self, data: bytes) -> int:
            writes.append(1)
            if len(writes) == 3:  # two chunks written, the third finds the disk full
                self.f.write(data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    def opening(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FillsTheDisk(f) if "w" in mode else f

    real_range = token_cache._encode_range
    monkeypatch.setattr(token_cache, "open", opening, raising=False)
    monkeypatch.setattr(token_cache, "_encode_range", lambda *a: real_range(*a, chunk_bytes=4096))
    with pytest.raises(DataError) as caught:
        prepare_tokens(str(corpus), tok, work, progress=False)
    message = str(caught.value)
    assert "\n" not in message and "disk is full" in message and "--work-dir" in message
    need = float(message.split("need about ")[1].split(" MB")[0])
    assert 0.5 < need / (2 * len(corpus.read_bytes()) / 1e6) <= 1.0  # ~2 bytes per byte-level id
    assert [p.name for p in (work / "tokens").iterdir()] == [CONTENT_IDS]  # no partial file
    monkeypatch.undo()
    calls = count_encodings(monkeypatch)
    files = prepare_tokens(str(corpus), tok, work, progress=False)
    assert len(calls) == 2  # everything tokenized again, nothing reused
    clean = prepare_tokens(str(corpus), tok, tmp_path / "clean", progress=False)
    assert np.array_equal(read_ids(files.train, "uint16"), read_ids(clean.train, "uint16"))


def test_vocabularies_above_65536_use_uint32(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt", n_lines=50)
    files = prepare_tokens(str(corpus), BigVocab(), tmp_path / "work", progress=False)
    assert files.dtype == "uint32"
    ids = read_ids(files.train, files.dtype)
    assert ids.max() > 65_536 and ids.max() == 65_536 + max(
        len(x) + 1 for x in corpus.read_text().splitlines()
    )


def test_windows_are_shifted_pairs_deterministic_per_seed_and_index(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt", n_lines=400)
    files = prepare_tokens(str(corpus), byte_tokenizer(), tmp_path / "work", progress=False)
    windows = files.windows("train", n_ctx=16, batch_size=8, seed=3)
    assert isinstance(windows.tokens, np.memmap)  # read through a memory map, not loaded
    x, y = windows.batch(5)
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    ids = torch.from_numpy(read_ids(files.train, files.dtype).astype(np.int64))
    for row_x, row_y in zip(x, y):  # each row is a contiguous window of the file
        starts = [s for s in range(len(ids) - 16) if torch.equal(ids[s : s + 16], row_x)]
        assert any(torch.equal(ids[s + 1 : s + 17], row_y) for s in starts)
    again = files.windows("train", n_ctx=16, batch_size=8, seed=3)
    assert torch.equal(again.batch(5)[0], x)  # a pure function of (seed, index)
    assert not torch.equal(windows.batch(6)[0], x)
    assert not torch.equal(files.windows("train", 16, 8, seed=4).batch(5)[0], x)


def test_windows_reach_both_ends_of_the_file(tmp_path):
    path = tmp_path / "ids.bin"
    np.arange(40, dtype=np.uint16).tofile(path)
    windows = Windows(path, "uint16", n_ctx=8, batch_size=64, seed=0)
    starts = {int(x[0]) for i in range(20) for x in windows.batch(i)[0]}
    assert starts == set(range(40 - 8))  # every start, the last window ends at the last token


def test_a_corpus_shorter_than_one_window_is_a_clear_error(tmp_path):
    path = tmp_path / "ids.bin"
    np.arange(8, dtype=np.uint16).tofile(path)
    with pytest.raises(DataError, match="fewer than one window of n_ctx \\+ 1 = 9"):
        Windows(path, "uint16", n_ctx=8, batch_size=2, seed=0)
    path.write_bytes(b"")
    with pytest.raises(DataError, match="lower n_ctx"):
        Windows(path, "uint16", n_ctx=8, batch_size=2, seed=0)


def test_missing_empty_and_non_utf8_corpora_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        corpus_files(str(tmp_path / "nope.txt"))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="is empty"):
        corpus_files(str(tmp_path / "empty.txt"))
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1") * 10)
    with pytest.raises(DataError, match="not UTF-8"):
        prepare_tokens(
            str(tmp_path / "latin1.txt"), byte_tokenizer(), tmp_path / "w", progress=False
        )
    left = [p for p in (tmp_path / "w").rglob("*") if p.is_file() and p.name != CONTENT_IDS]
    assert not left  # nothing half-made is left (the corpus's checksum may be remembered)


def test_the_story_ends_of_tinystories_become_the_end_of_text_token(tmp_path):
    """TinyStories separates its stories with `<|endoftext|>`: read as text it would cost
    several tokens a story and no model would learn where a story ends. The token files hold
    the tokenizer's end-of-text token there instead (so sampling stops at a story's end)."""
    from gpt1_lib.tokenizer import EOS_ID, encode, train_tokenizer

    tok = train_tokenizer(make_corpus(tmp_path / "corpus.txt"), 300)
    separator = token_cache._separator("tinystories")
    assert separator == "<|endoftext|>" and token_cache._separator("tinyshakespeare") is None
    text = "Once upon a time.\n<|endoftext|>\nThe end.\n<|endoftext|>\n"
    ids = token_cache._encode(tok, text, separator).tolist()
    story, end = encode(tok, "Once upon a time.\n"), encode(tok, "The end.\n")
    assert ids == [*story, EOS_ID, *end, EOS_ID]
    assert EOS_ID not in token_cache._encode(tok, text).tolist()  # without: read as text
    # the separator is part of the recipe, so token files made before it are not reused
    assert token_cache._recipe(tok, True, 0.1, separator) != token_cache._recipe(
        tok, True, 0.1, None
    )
