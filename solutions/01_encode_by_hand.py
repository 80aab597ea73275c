"""Chapter 01, exercise 1: encode with a trained tokenizer's own merges, by hand.

A `tokenizers` BPE tokenizer is a vocabulary and an ordered list of merges, nothing more.
Read both from the profile's tokenizer (its JSON), split the text with the `ByteLevel`
pre-tokenizer, merge the earliest-learned adjacent pair in each chunk until none is left, look
the pieces up in the vocabulary, and check that the ids are exactly `encode(tokenizer, text)`
on the held-out tenth of tiny shakespeare.
"""

import json

from tokenizers import pre_tokenizers

from gpt1_lib.corpus import read_text
from gpt1_lib.profiles import active_profile
from gpt1_lib.tokenizer import encode
from gpt1_lib.tokenizer_cache import prepare_tokenizer


def bpe_encode(text: str, vocab: dict[str, int], merges: list[tuple[str, str]]) -> list[int]:
    """Token ids of `text` from a byte-level BPE vocabulary and its merges, in pure Python."""
    rank = {pair: r for r, pair in enumerate(merges)}
    split = pre_tokenizers.ByteLevel(add_prefix_space=False)
    ids = []
    for chunk, _ in split.pre_tokenize_str(text):  # chunks already drawn as stand-in characters
        symbols = list(chunk)
        while len(symbols) > 1:
            pairs = list(zip(symbols, symbols[1:]))
            best = min(pairs, key=lambda p: rank.get(p, len(rank)))
            if best not in rank:
                break
            i, merged = 0, []
            while i < len(symbols):  # merge every occurrence, left to right
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        ids.extend(vocab[s] for s in symbols)
    return ids


profile = active_profile(verbose=False)
tokenizer = prepare_tokenizer("tinyshakespeare", profile["vocab_size"], profile.work_dir)
model = json.loads(tokenizer.to_str())["model"]
# a merge is "a b" in older versions of tokenizers and ["a", "b"] in newer ones
merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
text = read_text("tinyshakespeare")
heldout = text[text.rfind("\n", 0, int(len(text) * 0.9)) + 1 :]

ours = bpe_encode(heldout, model["vocab"], merges)
theirs = encode(tokenizer, heldout)
print(f"{len(merges)} merges; {len(heldout):,} held-out characters -> {len(ours):,} tokens")
assert ours == theirs, "the hand-written encoder disagrees with the library"
print("identical to encode(tokenizer, text) on every token")
