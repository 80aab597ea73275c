"""Chapter 09, exercise 2: OpenAI's auxiliary LM loss, by hand, with its quirk.

OpenAI's code keeps one embedding matrix `we` = [BPE tokens | 3 special | n_ctx position rows]
and ties the LM head to all of it, so its softmax over "the next token" also runs over the
position rows, which are never a target. Per position t, with z the logits over the V token
rows and p those over the n_ctx position rows, the two losses differ by exactly

    logsumexp(z, p) - logsumexp(z) = log(1 + sum(exp p) / sum(exp z)) > 0,

the probability mass the position rows take. In a fresh model every weight is N(0, 0.02), so all
logits are near 0, every row gets about the same mass, and the gap is about log((V + n_ctx) / V).
We compute both losses on a padded batch, check the identity position by position, and measure
the gap against that estimate. Our `lm_loss` follows Hugging Face's port (token rows only).

The answer, measured: the original's loss is higher by a little more than log(335/303) (about
0.103 against 0.100 here). The extra comes from one row: the hidden state at position t still
carries its own position row, so that row's logit is well above 0 even in a fresh model.
"""

import math

import torch

from gpt1_lib.finetune_model import FineTuneModel, collate, grow_vocab, lm_loss
from gpt1_lib.model import GPT, GPTConfig

torch.manual_seed(0)
config = GPTConfig(vocab_size=300, n_ctx=32, n_embd=32, n_layer=2, n_head=4, dropout=0.0)
gpt = grow_vocab(GPT(config), 3)  # 300 BPE tokens + start, delimiter, extract
model = FineTuneModel(gpt, "classification", 2).eval()
V, n_ctx = gpt.config.vocab_size, gpt.config.n_ctx  # 303, 32
start, extract = V - 3, V - 1

# four classification inputs of different lengths, padded with 0 to the longest, with a mask
lengths = (30, 17, 9, 24)
seqs = [[[start, *torch.randint(0, 300, (n - 2,)).tolist(), extract]] for n in lengths]
idx, mask, _ = (t[:, 0] for t in collate(seqs))  # (4, 30): one sequence per example
with torch.no_grad():
    h = model.hidden(idx)  # (4, 30, 32) final hidden states
    ours = lm_loss(gpt.lm_head(h), idx, mask)  # softmax over the 303 token rows
    we = torch.cat([gpt.tokens_embed.weight, gpt.positions_embed.weight])  # (303 + 32, 32)
    original = lm_loss(h @ we.T, idx, mask)  # the same targets, softmax over all 335 rows

    # the identity, position by position: the gap is the log of 1 + the position rows' share
    all_rows, token_rows = h @ we.T, h @ gpt.tokens_embed.weight.T
    gap = torch.logsumexp(all_rows, -1) - torch.logsumexp(token_rows, -1)  # (4, 30)
    m = mask[:, 1:]
    mean_gap = ((gap[:, :-1] * m).sum(1) / m.sum(1)).mean()  # averaged as lm_loss averages

estimate = math.log((V + n_ctx) / V)
print(f"ours (token rows, V={V}):          {ours.item():.4f}   (log V = {math.log(V):.4f})")
print(f"original (+{n_ctx} position rows):     {original.item():.4f}")
print(f"gap {original.item() - ours.item():.4f}, log((V + n_ctx)/V) = {estimate:.4f}, "
      f"per-position gap from {gap.min().item():.4f} to {gap.max().item():.4f}")  # fmt: skip

assert original > ours  # the position rows always take some probability mass
assert (gap > 0).all()
assert torch.isclose(original - ours, mean_gap, atol=1e-5)  # exactly the masked mean of the gap
assert abs((original - ours).item() / estimate - 1) < 0.05  # fresh: within 5 % of log(335/303)
assert estimate < (original - ours).item()  # a little above: one position row stands out

# why above: through the residual stream, h at position t still carries its own input, token row
# + position row t, so the logit of position row t is well above 0 and that row takes more than
# an equal share (each of the others gets about 1 / (V + n_ctx))
with torch.no_grad():
    pos_logits = h @ gpt.positions_embed.weight.T  # (4, 30, n_ctx)
    t = torch.arange(idx.size(1))
    own = pos_logits[:, t, t]  # (4, 30): row t at position t
    others = (pos_logits.sum(-1) - own) / (n_ctx - 1)
    own_mean, others_mean = own[mask.bool()].mean().item(), others[mask.bool()].mean().item()
print(f"mean logit of position t's own row {own_mean:.3f}, of the other position rows "
      f"{others_mean:.3f}")  # fmt: skip
assert own_mean > 0.2 and abs(others_mean) < 0.05
