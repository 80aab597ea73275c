"""gpt1_lib.data: token-id files on disk and random contiguous windows (chapter 05)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from training_helpers import make_corpus

from gpt1_lib.data import DataError, Windows, corpus_files, prepare_tokens, token_dtype


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
    import gpt1_lib.data as data

    real = data._encode_range
    monkeypatch.setattr(data, "_encode_range", lambda *a: real(*a, chunk_bytes=97))
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


def test_vocabularies_above_65536_use_uint32(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt", n_lines=50)
    files = prepare_tokens(str(corpus), BigVocab(), tmp_path / "work", progress=False)
    assert files.dtype == "uint32"
    ids = read_ids(files.train, files.dtype)
    assert ids.max() > 65_536 and ids.max() == 65_536 + max(len(x) + 1 for x in corpus.read_text().splitlines())


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
        prepare_tokens(str(tmp_path / "latin1.txt"), byte_tokenizer(), tmp_path / "w", progress=False)
    assert not [p for p in (tmp_path / "w").rglob("*") if p.is_file()]  # nothing half-made is left
