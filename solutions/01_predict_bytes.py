"""Chapter 01, exercise 3: predict, then check, what an ASCII corpus does to a byte vocabulary.

Tiny shakespeare is plain ASCII. Predictions to check against the profile's tokenizer:
(a) how many of the 256 byte tokens never occur when the whole corpus is encoded (at least
those of the bytes the text never contains: could there be more?); (b) how many tokens an
emoji, never seen in training, takes; (c) what decoding its first token alone gives.
"""

import numpy as np

from gpt1_lib.corpus import read_text
from gpt1_lib.profiles import active_profile
from gpt1_lib.tokenizer import decode, encode
from gpt1_lib.tokenizer_cache import prepare_tokenizer


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte (section 4.2): a byte token's string."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    moved = [b for b in range(256) if b not in printable]
    return {b: chr(b) for b in printable} | {b: chr(256 + n) for n, b in enumerate(moved)}


profile = active_profile(verbose=False)
tokenizer = prepare_tokenizer("tinyshakespeare", profile["vocab_size"], profile.work_dir)
text = read_text("tinyshakespeare")

# (a) count every token of the encoded corpus, then look at the 256 byte tokens
counts = np.bincount(encode(tokenizer, text), minlength=tokenizer.get_vocab_size())
byte_token = {b: tokenizer.token_to_id(c) for b, c in bytes_to_unicode().items()}
never = {b for b, i in byte_token.items() if counts[i] == 0}
absent = set(range(256)) - set(text.encode("utf-8"))
extra = sorted(chr(b) for b in never - absent)
print(
    f"the text uses {256 - len(absent)} distinct bytes; {len(never)} byte tokens never occur: "
    f"the {len(absent)} absent bytes and {extra}, always absorbed into longer tokens"
)
assert text.isascii() and len(absent) == 256 - len(set(text)) == 191
assert absent <= never  # a byte the text lacks can never be a token of it
# Every q in Shakespeare is followed by u: once the tokenizer has learned `qu` (the cpu profile's
# 2,048 tokens have; the smoke profile's 512 have not), no q is left alone, and q is the one extra.
has_qu = tokenizer.token_to_id("qu") is not None
assert text.count("q") == text.count("qu") and extra == (["q"] if has_qu else [])

# (b) and (c): an emoji is 4 bytes that no merge ever joined
emoji = "🙂"
ids = encode(tokenizer, emoji)
first = decode(tokenizer, ids[:1])
print(
    f"{emoji!r}: {len(emoji.encode())} bytes -> {len(ids)} tokens; "
    f"the first alone decodes to {first!r}"
)
assert len(ids) == len(emoji.encode()) == 4
assert first == "\ufffd"  # a quarter of a character is not text: the replacement character
assert decode(tokenizer, ids) == emoji
