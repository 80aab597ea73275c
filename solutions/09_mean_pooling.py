"""Chapter 09, exercise 3: a different pooling, and why GPT-1 reads the extract token.

GPT-1's classifier reads the final hidden state at the extract token. We write the common
alternative, the mean of the final hidden states over each sequence's real tokens, as a drop-in
for `FineTuneModel.forward`'s logits, and check on a small model that (a) padding does not change
it, (b) it is not the extract-token logits, and (c) why GPT-1 does not need it.

(c) The model is causal: the state at position t is computed from tokens 0..t only, so changing
later tokens leaves it exactly as it was. The extract token comes last, so it is the one position
whose state has read the whole input; a mean mixes it with states that saw only a prefix (the
first, at the start token, saw nothing of the input and is the same for every example). A
bidirectional encoder (BERT) has no such position, which is why pooling over tokens is common
there; in GPT-1 the extract token is trained, through the head, to gather what the task needs.
"""

import torch
import torch.nn.functional as F

from gpt1_lib.finetune_model import FineTuneModel, collate, grow_vocab
from gpt1_lib.model import GPT, GPTConfig


def mean_pool_logits(
    model: FineTuneModel, idx: torch.Tensor, mask: torch.Tensor, last: torch.Tensor
) -> torch.Tensor:
    """(B, C, T) ids and mask from `collate` -> logits (B, classes or choices), read from the
    mean final hidden state over each sequence's real tokens instead of the extract token's.
    `last` is unused; it is taken so the call matches `model(idx, mask, last).logits`."""
    B, C, T = idx.shape
    h = model.hidden(idx.view(B * C, T)).view(B, C, T, -1)
    m = mask.unsqueeze(-1)  # (B, C, T, 1): padding counts for nothing
    pooled = (h * m).sum(2) / m.sum(2)  # (B, C, n_embd)
    if model.kind == "similarity":
        pooled = pooled.sum(1, keepdim=True)  # both orderings added, as forward does
    if model.training and model.clf_dropout > 0:
        keep = pooled.new_ones(B, 1, pooled.size(-1))
        pooled = pooled * F.dropout(keep, model.clf_dropout, training=True)
    scores = model.head(pooled)
    return scores.view(B, C) if model.kind == "multiple_choice" else scores[:, 0]


if __name__ == "__main__":
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=100, n_ctx=32, n_embd=32, n_layer=2, n_head=4)
    model = FineTuneModel(grow_vocab(GPT(config), 3), "classification", 3).eval()
    start, extract = 100, 102
    seqs = [[[start, *torch.randint(0, 100, (n,)).tolist(), extract]] for n in (5, 20, 12)]

    with torch.no_grad():
        batch = collate(seqs)  # padded to the longest, 22 tokens
        pooled = mean_pool_logits(model, *batch)
        alone = torch.cat([mean_pool_logits(model, *collate([s])) for s in seqs])
        extract_logits = model(*batch).logits
    print("mean-pool logits, batch:\n", pooled.numpy().round(4))
    print("mean-pool logits, each alone:\n", alone.numpy().round(4))
    print("extract-token logits:\n", extract_logits.numpy().round(4))
    assert torch.allclose(pooled, alone, atol=1e-5)  # (a) padding changes nothing
    assert not torch.allclose(pooled, extract_logits, atol=1e-3)  # (b) another reading

    # (c) causality: change the tokens after position t, and the states up to t stay the same
    idx = torch.tensor(seqs[1])  # (1, 22), no padding
    t = 10
    changed = idx.clone()
    changed[0, t + 1 : -1] = (idx[0, t + 1 : -1] + 1) % 100  # every token after t, not extract
    with torch.no_grad():
        h, h2 = model.hidden(idx), model.hidden(changed)
    diff = (h - h2).abs().amax(-1)[0]  # (22,) largest change of each position's state
    print(
        f"largest change of the state at positions 0..{t}: {diff[: t + 1].max().item():.2e}, "
        f"at {t + 1}..{idx.size(1) - 1}: at least {diff[t + 1 :].min().item():.2e}"
    )
    assert diff[: t + 1].max() < 1e-5 and diff[t + 1 :].min() > 1e-3
    with torch.no_grad():  # the start token's state is the same for every input
        firsts = torch.stack([model.hidden(torch.tensor(s))[0, 0] for s in seqs])
    assert torch.allclose(firsts, firsts[0].expand_as(firsts), atol=1e-6)
