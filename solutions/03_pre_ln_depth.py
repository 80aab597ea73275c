"""Chapter 03, exercise 4: predict a number, then check it.

In section 6, at GPT-1's initialisation, the top layer of a pre-LN stack gets a gradient that
shrinks like 1/√L with the depth L. Predict the ratio of the top layer's gradient in an 8-layer
stack to that in a 32-layer stack (√(32/8) = 2), then measure it. Then predict it again with the
embeddings' sum scaled to unit variance (section 6's middle panel: no dependence on depth, so 1).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from gpt1_lib.attention import GPTConfig
from gpt1_lib.block import Block


def top_layer_gradient(n_layer: int, input_scale: float = 1.0) -> float:
    """‖grad of the top block's mlp.c_fc.weight‖, pre-LN stack with ln_f and a tied output layer."""
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=256, n_ctx=32, n_embd=64, n_layer=n_layer, n_head=4, dropout=0.0, pre_ln=True
    )
    wte, wpe = nn.Embedding(cfg.vocab_size, cfg.n_embd), nn.Embedding(cfg.n_ctx, cfg.n_embd)
    blocks = nn.ModuleList(Block(cfg) for _ in range(n_layer))
    ln_f = nn.LayerNorm(cfg.n_embd)
    for module in [wte, wpe, *blocks.modules()]:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
    idx, targets = torch.randint(cfg.vocab_size, (2, 4, cfg.n_ctx))
    h = input_scale * (wte(idx) + wpe(torch.arange(cfg.n_ctx)))
    for block in blocks:
        h = block(h)
    F.cross_entropy((ln_f(h) @ wte.weight.T).flatten(0, 1), targets.flatten()).backward()
    return blocks[-1].mlp.c_fc.weight.grad.norm().item()


if __name__ == "__main__":
    torch.set_num_threads(1)
    ratio = top_layer_gradient(8) / top_layer_gradient(32)
    print(f"GPT-1's init: top layer, 8 vs 32 layers: {ratio:.2f}× (1/√L predicts 2)")
    assert 1.6 < ratio < 2.5
    unit = 1 / (0.02 * math.sqrt(2))
    ratio = top_layer_gradient(8, unit) / top_layer_gradient(32, unit)
    print(
        f"unit-variance input: top layer, 8 vs 32 layers: {ratio:.2f}× (no depth dependence predicts 1)"
    )
    assert 0.8 < ratio < 1.25
