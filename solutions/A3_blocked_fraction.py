"""Chapter 02, exercise 1: predict, then count, the work the blocked attention path skips.

`blocked_causal_attention(q, k, v, p, blocks=b)` cuts the T queries into b slices; slice i
computes scores only against the keys up to its own end. Prediction: slice i (counting from 1)
touches i of the b key blocks, so the blocks computed are 1 + 2 + ... + b = b(b + 1)/2 of b²,
a fraction (b + 1) / (2b) of the full T x T scores: 1, 3/4, 5/8, 9/16 for b = 1, 2, 4, 8,
tending to the 1/2 of the lower triangle. The check counts the FLOPs of the two batched
matrix products (scores and weights @ values) with PyTorch's FLOP counter.
"""

from fractions import Fraction

import torch
from torch.utils.flop_counter import FlopCounterMode

from gpt1_lib.cpu_attention import blocked_causal_attention

B, H, T, D = 2, 4, 64, 16
q, k, v = torch.randn(3, B, H, T, D)


def attention_flops(blocks: int) -> int:
    """FLOPs of the forward pass's matrix products for a given number of query blocks."""
    with FlopCounterMode(display=False) as counter:
        blocked_causal_attention(q, k, v, dropout_p=0.1, blocks=blocks)
    return counter.get_total_flops()


full = 4 * B * H * T * T * D  # q kᵀ and weights @ v over the whole T x T matrix
for blocks in (1, 2, 4, 8):
    measured = Fraction(attention_flops(blocks), full)
    predicted = Fraction(blocks + 1, 2 * blocks)
    print(f"blocks = {blocks}: computed {measured} of the full T x T work (predicted {predicted})")
    assert measured == predicted
