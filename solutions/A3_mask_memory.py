"""Chapter 02, exercise 4: predict, then measure, the memory the dropout masks hold.

Between the forward and the backward pass, dropout must keep its mask. One attention layer of
the `cpu` preset's shape (batch 8, 4 heads, 128 positions, head width 128 / 4 = 32, all read
from `gpt1_lib/configs/cpu.yaml` below) holds 8 * 4 * 128² = 512 Ki attention weights. The
preset itself trains with dropout 0 and keeps no mask at all; at GPT-1's dropout 0.1,
prediction: `F.dropout` keeps a float32 mask, 4 bytes each, 2 MiB; the blocked path keeps a
boolean mask (1 byte) for the 3/4 of the weights it computes, 0.375 MiB: 3/16 as much.
"""

import torch
import torch.nn.functional as F

from gpt1_lib.cpu_attention import blocked_causal_attention
from gpt1_lib.profiles import load_config

cpu = load_config("cpu")
B, H, T, D = cpu["batch_size"], cpu["n_head"], cpu["n_ctx"], cpu["n_embd"] // cpu["n_head"]
assert (B, H, T, D) == (8, 4, 128, 32)  # the sizes the prediction above used
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
assert float_mask == B * H * T * T * 4 == 2 * MiB
assert bool_mask == B * H * T * T * 3 // 4 == 0.375 * MiB
