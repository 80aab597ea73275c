"""Chapter 07, exercise 3: show that sampling at temperature T -> 0 becomes greedy decoding.

At temperature T the top token's probability is at least 1 / (1 + (V - 1) e^(-gap / T)), where
`gap` is how far its logit leads the runner-up's. So "small" T is relative: T must be small
beside the gap, divided by about ln V. A freshly initialised model has tiny logits (its
weights are N(0, 0.02)), so its gaps are tiny too. We measure the smallest gap along a greedy
run of a tiny random model, then sample at T = gap / 50 (where each step leaves the top token
with probability below V e^(-50), far under one in a billion) and check that every row
reproduces the greedy tokens, while T = 1 does not.
"""

import torch

from gpt1_lib.attention import GPTConfig
from gpt1_lib.generate import generate
from gpt1_lib.model import GPT

torch.set_num_threads(1)
torch.manual_seed(0)
config = GPTConfig(vocab_size=97, n_ctx=32, n_embd=32, n_layer=2, n_head=4, dropout=0.0)
model = GPT(config).eval()
prompts = torch.randint(0, config.vocab_size, (8, 4))
NEW = 24

greedy = generate(model, prompts, NEW, temperature=0.0)
with torch.no_grad():  # the lead of the top logit over the runner-up, at every greedy step
    logits, _ = model(greedy[:, :-1])
top2 = logits[:, prompts.size(1) - 1 :].topk(2, dim=-1).values
min_gap = (top2[..., 0] - top2[..., 1]).min().item()
print(f"smallest lead of the top logit over the runner-up along the greedy run: {min_gap:.2e}")
assert min_gap > 0  # no exact ties, or "the" greedy token would not be defined

cold = min_gap / 50
for seed in range(3):
    gen = torch.Generator().manual_seed(seed)
    sampled = generate(model, prompts, NEW, temperature=cold, generator=gen)
    assert torch.equal(sampled, greedy), f"seed {seed}: sampling at T={cold:.1e} left greedy"
warm = generate(model, prompts, NEW, temperature=1.0, generator=torch.Generator().manual_seed(0))
start = prompts.size(1)
agree = (warm[:, start:] == greedy[:, start:]).float().mean().item()
print(
    f"T = {cold:.1e}: all 8 rows x {NEW} tokens equal greedy, for 3 seeds; "
    f"T = 1: {agree:.0%} of the tokens equal greedy"
)
assert agree < 0.5
