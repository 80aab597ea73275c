"""Chapter 02, exercise 4: predict, then measure, the memory the dropout masks hold.

Between the forward and the backward pass, dropout must keep its mask. For one attention layer
of the `cpu` preset (batch 16, 8 heads, 128 positions) the weights are 16 * 8 * 128² = 2 Mi
numbers. Prediction: `F.dropout` keeps a float32 mask, 4 bytes each, 8 MiB; the blocked path
keeps a boolean mask (1 byte) for the 3/4 of the weights it computes, 1.5 MiB: 3/16 as much.
"""

import torch
import torch.nn.functional as F

from gpt1_lib.attention import blocked_causal_attention

B, H, T, D = 16, 8, 128, 32
MiB = 2**20


def saved_bytes(operation, *inputs: torch.Tensor, dtype: torch.dtype) -> int:
    """Bytes of the tensors of one dtype that autograd saves while running operation(*inputs)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        if t.dtype == dtype:
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        operation(*inputs)
    return total


weights = torch.rand(B, H, T, T, requires_grad=True)
float_mask = saved_bytes(lambda w: F.dropout(w, 0.1, training=True), weights, dtype=torch.float32)
q, k, v = (torch.randn(B, H, T, D, requires_grad=True) for _ in range(3))
bool_mask = saved_bytes(
    lambda *qkv: blocked_causal_attention(*qkv, dropout_p=0.1), q, k, v, dtype=torch.bool
)
print(
    f"F.dropout keeps {float_mask / MiB:.2f} MiB of mask, the blocked path {bool_mask / MiB:.2f} MiB "
    f"({bool_mask / float_mask:.0%})"
)
assert float_mask == B * H * T * T * 4
assert bool_mask == B * H * T * T * 3 // 4
