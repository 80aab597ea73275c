"""Chapter 02, exercise 2: write a sliding-window causal mask.

Local attention (Longformer, Mistral) lets each query see only the last `window` positions,
itself included, so the cost grows as T * window instead of T². Write
`window_mask(q_len, k_len, window)`, True where a query may look, for queries that are the last
q_len of k_len positions as in `causal_mask`. Check that a window as long as the sequence is
the causal mask, that attention through it matches PyTorch's kernel given the same mask, and
that a query's output ignores every token more than `window - 1` positions back.
"""

import torch
import torch.nn.functional as F

from gpt1_lib.attention import causal_mask


def window_mask(q_len: int, k_len: int, window: int) -> torch.Tensor:
    """Boolean (q_len, k_len) mask: query i (at position k_len - q_len + i) sees its last `window` keys."""
    if window < 1:
        raise ValueError(f"window must be at least 1 (the query itself), got {window}")
    offset = k_len - q_len
    return causal_mask(q_len, k_len) & ~torch.ones(q_len, k_len, dtype=torch.bool).tril(
        offset - window
    )


def windowed_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int
) -> torch.Tensor:
    """softmax(q kᵀ / √d, masked to the window) v, written out."""
    scores = q @ k.transpose(-2, -1) / q.size(-1) ** 0.5
    mask = window_mask(q.size(-2), k.size(-2), window)
    return scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v


print(window_mask(6, 6, 3).int())
assert torch.equal(window_mask(6, 6, 3).sum(-1), torch.tensor([1, 2, 3, 3, 3, 3]))
assert torch.equal(window_mask(8, 8, 8), causal_mask(8, 8))  # a full window is causal attention
assert torch.equal(window_mask(2, 5, 2), torch.tensor([[0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]).bool())

torch.manual_seed(0)
q, k, v = torch.randn(3, 2, 4, 16, 8)
ours = windowed_attention(q, k, v, window=4)
theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=window_mask(16, 16, 4))
torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)

changed_k, changed_v = k.clone(), v.clone()
changed_k[..., :8, :], changed_v[..., :8, :] = torch.randn(2, 2, 4, 8, 8)  # rewrite tokens 0..7
after = windowed_attention(q, changed_k, changed_v, window=4)
assert torch.equal(after[..., 11:, :], ours[..., 11:, :])  # queries 11.. see only keys 8..
assert not torch.allclose(after[..., 10, :], ours[..., 10, :])  # query 10 still sees key 7
print("window of 4: the outputs from position 11 on ignore tokens 0..7; position 10 does not")
