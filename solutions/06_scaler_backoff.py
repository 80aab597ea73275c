"""Chapter 06, exercise 2: how fast does a GradScaler find its scale?

Start float16 training with a scale far too large, 2**40: the scaled gradients overflow float16
(largest finite value 65,504), so `step` skips the update and `update` halves the scale. Count
the skipped updates. Each skip halves the scale, so the count is about log2(2**40 / the largest
scale at which no gradient overflows): a few dozen updates lost at most, whatever the start, which
is why GradScaler can start high (its default is 2**16) and back off. Once it steps, it grows the
scale again only after `growth_interval` (2,000) clean updates.
"""

import torch

from gpt1_lib.model import GPT, GPTConfig
from gpt1_lib.optim import make_optimizer

torch.manual_seed(0)
model = GPT(GPTConfig(vocab_size=256, n_ctx=32, n_embd=64, n_layer=2, n_head=4, dropout=0.0))
optimizer = make_optimizer(model, lr=1e-3)
scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
x, y = torch.randint(0, 256, (4, 32)), torch.randint(0, 256, (4, 32))
skipped = 0
for _ in range(60):
    before = model.tokens_embed.weight.detach().clone()
    with torch.autocast("cpu", dtype=torch.float16):
        _, loss = model(x, y)
    scaler.scale(loss.float()).backward()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if torch.equal(before, model.tokens_embed.weight):
        skipped += 1
    else:
        break
print(f"skipped {skipped} updates; the scale that stepped: 2**{40 - skipped} = {2.0 ** (40 - skipped):,.0f}")
print(f"scale after that update: {scaler.get_scale():,.0f}")
assert 5 < skipped < 40  # many halvings, then a step
assert scaler.get_scale() == 2.0 ** (40 - skipped)  # no growth yet: growth waits 2,000 clean steps
