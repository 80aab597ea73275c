"""Chapter 07, exercise 4: compute perplexity by hand from the logits, and match the library.

Perplexity is exp(mean over tokens of -log p(token | the tokens before it)). By hand: for each
token j >= 1, run the model on the (at most n_ctx) tokens before it, take the log-softmax of the
last position's logits and read off the token's entry. That is exactly what `perplexity` does
with stride 1: every token gets the longest context the model can see. With a larger stride it
scores several tokens per window, some with less context, so on a text longer than n_ctx its
value may differ, while on a text that fits in one window every stride agrees. We check both
on a tiny random model, and that a model that knows nothing sits near the vocabulary size.
"""

import math

import torch

from gpt1_lib.attention import GPTConfig
from gpt1_lib.model import GPT
from gpt1_lib.perplexity import perplexity


@torch.no_grad()
def perplexity_by_hand(model: GPT, ids: torch.Tensor) -> float:
    """exp(mean NLL), one forward pass per predicted token, each with up to n_ctx of context."""
    n_ctx, nll = model.config.n_ctx, 0.0
    for j in range(1, ids.numel()):
        context = ids[max(0, j - n_ctx) : j]
        logits, _ = model(context[None])
        nll -= logits[0, -1].log_softmax(dim=-1)[ids[j]].item()
    return math.exp(nll / (ids.numel() - 1))


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=101, n_ctx=16, n_embd=32, n_layer=2, n_head=4, dropout=0.0)
    model = GPT(config).eval()
    with torch.no_grad():  # sharper logits than the N(0, 0.02) start, so contexts matter
        model.tokens_embed.weight.mul_(5)
    ids = torch.randint(0, config.vocab_size, (60,))

    by_hand = perplexity_by_hand(model, ids)
    library = perplexity(model, ids, stride=1)
    print(f"60 tokens, n_ctx 16: by hand {by_hand:.4f}, perplexity(stride=1) {library:.4f}")
    assert math.isclose(by_hand, library, rel_tol=1e-5)

    coarse = perplexity(model, ids, stride=16)  # disjoint windows: some tokens see little context
    print(f"stride 16 (disjoint windows): {coarse:.4f}")
    assert not math.isclose(coarse, library, rel_tol=1e-5)

    short = ids[:16]  # fits in one window: every stride scores each token with all of its past
    values = [perplexity(model, short, stride=s) for s in (1, 4, 16)]
    assert all(math.isclose(v, perplexity_by_hand(model, short), rel_tol=1e-5) for v in values)

    blank = GPT(config).eval()  # at initialisation the logits are nearly equal: ~uniform
    ppl = perplexity(blank, ids, stride=1)
    print(f"a freshly initialised model: perplexity {ppl:.2f} (vocabulary {config.vocab_size})")
    assert abs(ppl / config.vocab_size - 1) < 0.05
