"""Chapter 02, exercise 3: knock out one half of the trained induction circuit.

Train section 9's two-layer attention-only model on random tokens whose second half repeats
the first, then silence one head at a time (zero its columns of the layer's c_proj, so the
head's output never reaches the residual stream) and measure the loss on the repeated half.
Prediction: without layer 1's previous-token head, the keys of layer 2 no longer say "the
token before me", so induction fails and the repeated half goes back towards chance (ln V);
silencing layer 1's other head changes little.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from gpt1_lib.attention import CausalSelfAttention, GPTConfig

V, L_MAX, STEPS = 64, 16, 800


class AttentionOnly(nn.Module):
    """Two attention layers on a residual stream, no MLP (as in chapter 02, section 9)."""

    def __init__(self, vocab_size: int, n_ctx: int, n_embd: int = 64, n_head: int = 2) -> None:
        super().__init__()
        config = GPTConfig(
            vocab_size=vocab_size, n_ctx=n_ctx, n_embd=n_embd, n_head=n_head, dropout=0.0
        )
        self.tokens_embed = nn.Embedding(vocab_size, n_embd)
        self.positions_embed = nn.Embedding(n_ctx, n_embd)
        self.layers = nn.ModuleList(CausalSelfAttention(config) for _ in range(2))
        self.unembed = nn.Linear(n_embd, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tokens_embed(ids) + self.positions_embed(torch.arange(ids.size(1)))
        for layer in self.layers:
            x = x + layer(x)
        return self.unembed(x)


def repeated_tokens(batch: int, half: int, generator: torch.Generator) -> torch.Tensor:
    first = torch.randint(V, (batch, half), generator=generator)
    return torch.cat([first, first], dim=1)


torch.set_num_threads(1)  # a model this small trains fastest on one thread
torch.manual_seed(0)
model = AttentionOnly(V, n_ctx=2 * L_MAX)
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
data = torch.Generator().manual_seed(0)
for _ in range(STEPS):
    L = int(torch.randint(L_MAX // 2, L_MAX + 1, (1,), generator=data))
    ids = repeated_tokens(32, L, data)
    loss = F.cross_entropy(model(ids[:, :-1]).transpose(1, 2), ids[:, 1:])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

test_ids = repeated_tokens(512, L_MAX, torch.Generator().manual_seed(1))


@torch.no_grad()
def repeated_half_loss() -> float:
    logits = model(test_ids[:, :-1])
    return F.cross_entropy(logits[:, L_MAX:].transpose(1, 2), test_ids[:, L_MAX + 1 :]).item()


@torch.no_grad()
def previous_token_scores() -> torch.Tensor:
    layer = model.layers[0]
    layer.record_weights = True
    model(test_ids[:, :-1])
    layer.record_weights = False
    return layer.attn_weights.mean(0).diagonal(-1, -2, -1)[:, : L_MAX - 1].mean(-1)


def knocked_out(layer: int, head: int) -> float:
    """The repeated-half loss with one head's output zeroed."""
    c_proj = model.layers[layer].c_proj
    width = c_proj.in_features // 2
    saved = c_proj.weight.detach().clone()
    with torch.no_grad():
        c_proj.weight[:, head * width : (head + 1) * width] = 0
    loss = repeated_half_loss()
    with torch.no_grad():
        c_proj.weight.copy_(saved)
    return loss


baseline = repeated_half_loss()
prev_head = previous_token_scores().argmax().item()
other_head = 1 - prev_head
print(f"repeated half: {baseline:.2f} nats intact (ln V = {math.log(V):.2f})")
results = {(layer, head): knocked_out(layer, head) for layer in (0, 1) for head in (0, 1)}
for (layer, head), value in results.items():
    role = (
        {prev_head: "previous-token head", other_head: "other head"}[head]
        if layer == 0
        else "induction"
    )
    print(f"  layer {layer + 1} head {head} ({role}) knocked out: {value:.2f}")
assert baseline < 0.25 * math.log(V)
assert results[0, prev_head] > 0.5 * math.log(V)  # half the circuit gone: back towards chance
assert results[0, other_head] < results[0, prev_head] / 2  # the other head matters far less
