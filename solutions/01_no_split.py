"""Chapter 01, exercise 2: byte-level BPE without GPT-2's split, an ablation.

Train the same tokenizer twice on the first 90% of tiny shakespeare, with the profile's
vocabulary size: once as `train_tokenizer` does (the `ByteLevel` pre-tokenizer splits the text
with GPT-2's pattern first) and once with `ByteLevel(use_regex=False)`, which hands each line to
BPE whole, as section 4.1's basic version did. Count the learned tokens that span a gap
between words (whitespace after anything else), and measure held-out bytes per token.
"""

import re

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from gpt1_lib.corpus import read_text
from gpt1_lib.profiles import active_profile
from gpt1_lib.tokenizer import MIN_VOCAB_SIZE, SPECIAL_TOKENS, encode


def byte_level_bpe(lines: list[str], vocab_size: int, split: bool) -> Tokenizer:
    """`train_tokenizer`'s recipe, with GPT-2's split switched on or off."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=split)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(lines, trainer)
    return tokenizer


def spans_a_gap(token: str) -> bool:
    """Whether a byte-level token holds whitespace after something else (Ġ is a space, Ċ a
    newline, ĉ a tab in GPT-2's stand-in characters)."""
    return re.search(r"[^ĠĊĉ][ĠĊĉ]", token) is not None


profile = active_profile(verbose=False)
text = read_text("tinyshakespeare")
cut = text.rfind("\n", 0, int(len(text) * 0.9)) + 1
train_lines, heldout = text[:cut].splitlines(keepends=True), text[cut:]

results = {}
for split in (True, False):
    tokenizer = byte_level_bpe(train_lines, profile["vocab_size"], split)
    learned = [tokenizer.id_to_token(i) for i in range(MIN_VOCAB_SIZE, tokenizer.get_vocab_size())]
    ids = encode(tokenizer, heldout)
    assert tokenizer.decode(ids) == heldout
    results[split] = (sum(map(spans_a_gap, learned)), len(heldout.encode()) / len(ids))
    examples = [t for t in learned if spans_a_gap(t)][:6]
    print(
        f"split={split!s:5}: {results[split][0]:4} of {len(learned)} learned tokens span a gap "
        f"{examples}; held-out {results[split][1]:.3f} bytes/token"
    )

assert results[True][0] == 0 < results[False][0]
assert results[False][1] > results[True][1]  # measured: the unsplit tokenizer compresses more
print(f"without the split: {results[False][1] / results[True][1] - 1:+.1%} bytes per token")

# Why GPT-2 splits anyway: the unsplit tokenizer compresses a little better only because it
# spends a large share of its vocabulary on a word's tail glued to the gap after it (`eĠ`,
# `,Ġ`, `dĠ`). Such tokens spell one word in many forms (`the` before a space, a comma, a
# newline), each a separate embedding the model must learn from fewer examples, and they tie
# the tokens of a word to whatever happens to follow it.
