"""The tokenizer cache (appendix A1 §2) of a corpus that separates its documents: TinyStories
ends each story with a line `<|endoftext|>`, which the token ids hold as the end-of-text token,
so the BPE must never see those letters, nor reuse a tokenizer trained on them."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from gpt1_lib import tokenizer_cache
from gpt1_lib.corpus import CORPORA
from gpt1_lib.tokenizer import decode

SEPARATOR = CORPORA["tinystories"].separator
WORDS = "once upon a time there was a little girl named lily she liked to play".split()


@pytest.fixture
def stories(tmp_path, monkeypatch) -> Path:
    """A small TinyStories look-alike (its separator, its validation file), fetched locally."""
    rng = random.Random(0)
    text = "".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))).capitalize()
                   + ".\n" + SEPARATOR + "\n" for _ in range(400))  # fmt: skip
    path = tmp_path / "stories.txt"
    path.write_text(text)
    registry = {"tinystories": dataclasses.replace(CORPORA["tinystories"])}
    monkeypatch.setattr(tokenizer_cache, "CORPORA", registry)
    monkeypatch.setattr(tokenizer_cache, "fetch", lambda name, split="train": path)
    monkeypatch.setattr(tokenizer_cache, "has_validation_split", lambda name: True)
    return path


def _learned(tokenizer) -> list[str]:
    """The vocabulary as text: each id past the 256 bytes and the special tokens, decoded."""
    return [decode(tokenizer, [i]) for i in range(tokenizer.get_vocab_size())]


@pytest.mark.parametrize("sample_bytes", [None, 20_000])  # the whole file, or its first bytes
def test_the_bpe_never_sees_the_story_separator(stories, tmp_path, sample_bytes):
    assert stories.read_text().count(SEPARATOR) == 400  # a fifth of the lines: merges would follow
    tokenizer = tokenizer_cache.prepare_tokenizer("tinystories", 400, tmp_path / "work", sample_bytes)
    pieces = [p for p in _learned(tokenizer) if len(p) > 1]
    assert pieces, "the BPE learned merges"
    spent = [p for p in pieces if "endof" in p or "<|" in p or "|>" in p or "oftext" in p]
    assert not spent, f"vocabulary spent on the separator: {spent}"


def test_a_tokenizer_trained_on_the_separator_is_not_reused(stories, tmp_path):
    """The cache's name says the separator was left out, so a tokenizer cached before (trained
    on the separator's letters) is trained again, and the token ids after it (keyed by it)."""
    path = tokenizer_cache.tokenizer_path("tinystories", 8192, tmp_path, 100_000_000)
    assert path.name == "tokenizer-tinystories-8192-first100000000-eos.json"
    old = tmp_path / "tokenizer-tinystories-400.json"  # where the cache was before
    tokenizer_cache.prepare_tokenizer("tinystories", 400, tmp_path)
    assert not old.exists() and (tmp_path / "tokenizer-tinystories-400-eos.json").is_file()


def test_the_sample_drops_each_separator_with_its_line_break(tmp_path):
    assert tokenizer_cache.tokenizer_path("tinyshakespeare", 2048, tmp_path).name == (
        "tokenizer-tinyshakespeare-2048-holdout0.1.json"  # no separator: the name as before
    )
    source = tmp_path / "s.txt"
    source.write_text(f"One story.\n{SEPARATOR}\nAnother story.\n{SEPARATOR}\nA third")
    tokenizer_cache._write_sample(source, tmp_path / "out.txt", 10_000, SEPARATOR)
    assert (tmp_path / "out.txt").read_text() == "One story.\nAnother story.\n"  # last line cut
