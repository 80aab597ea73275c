"""Chapter 07, exercise 2: write min-p sampling and check what it keeps.

Min-p (Nguyen et al., 2024) keeps every token whose probability is at least `min_p` times the
most likely token's, then renormalises. Like top-p it adapts to how sure the model is, but it
reads the threshold off the top token alone: a confident model (top token at 0.9) keeps only
tokens above 0.09 at min_p = 0.1, an unsure one (top token at 0.05) keeps everything above
0.005. We check on fixed distributions: what it keeps, that the result is a distribution, that
min_p = 1 is greedy, that min_p = 0 changes nothing, and that sampling from it agrees with the
probabilities it claims.
"""

import torch


def min_p_probs(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """softmax(logits) with every token below min_p * (largest probability) set to 0, renormalised.

    The threshold is compared in log space, `logit >= max_logit + log(min_p)`, so no probability
    has to be computed twice and min_p = 1 keeps exactly the tokens tied for the top.
    """
    if not 0.0 <= min_p <= 1.0:
        raise ValueError(f"min_p must be in [0, 1] (0 keeps every token), got {min_p}")
    if min_p == 0:
        return logits.softmax(dim=-1)
    threshold = logits.max(dim=-1, keepdim=True).values + torch.log(torch.tensor(min_p))
    return logits.masked_fill(logits < threshold, float("-inf")).softmax(dim=-1)


if __name__ == "__main__":
    confident = torch.tensor([0.80, 0.10, 0.05, 0.03, 0.02]).log()
    unsure = torch.tensor([0.30, 0.25, 0.20, 0.15, 0.10]).log()

    kept = min_p_probs(confident, 0.1)
    print("confident, min_p 0.1:", [round(p, 3) for p in kept.tolist()])
    assert (kept > 0).tolist() == [True, True, False, False, False]  # 0.10 >= 0.08 stays, 0.05 goes
    assert torch.allclose(kept, torch.tensor([0.8, 0.1, 0, 0, 0]) / 0.9)

    kept = min_p_probs(unsure, 0.1)
    print("unsure, min_p 0.1:   ", [round(p, 3) for p in kept.tolist()])
    assert (kept > 0).all()  # the same min_p keeps all five when the model is unsure
    assert (min_p_probs(unsure, 0.6) > 0).tolist() == [True, True, True, False, False]  # >= 0.18

    for logits in (confident, unsure):
        assert torch.allclose(min_p_probs(logits, 0.0), logits.softmax(-1))  # nothing dropped
        greedy = min_p_probs(logits, 1.0)
        assert greedy.argmax() == logits.argmax() and greedy.max() == 1.0  # min_p = 1: greedy
        for min_p in (0.05, 0.3, 0.7):
            assert torch.isclose(min_p_probs(logits, min_p).sum(), torch.tensor(1.0))

    # drawing from it: the frequencies of 200,000 draws match the probabilities
    gen = torch.Generator().manual_seed(0)
    probs = min_p_probs(unsure, 0.5)
    draws = torch.multinomial(probs, 200_000, replacement=True, generator=gen)
    freq = torch.bincount(draws, minlength=5) / draws.numel()
    print("frequencies:         ", [round(f, 3) for f in freq.tolist()])
    assert (freq - probs).abs().max() < 0.01
