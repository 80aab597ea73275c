"""Chapter 05, exercise 1: gradient accumulation with micro-batches of unequal size.

Chapter 05 §7 split 16 sequences into four micro-batches of 4 and divided each micro-batch's
mean loss by k = 4. Split 10 sequences into 4 + 6 instead. The big batch's loss is the mean over
all 10 × n_ctx predictions, so micro-batch i must weigh its mean loss by its share of the
predictions, n_i / N (here 0.4 and 0.6), not by 1/k: dividing by k = 2 over-weighs the small
micro-batch. (With equal sizes n_i / N = 1/k, which is why §6 could divide by k.)
"""

import torch

from gpt1_lib.model import GPT, GPTConfig

torch.manual_seed(0)
model = GPT(GPTConfig(vocab_size=97, n_ctx=16, n_embd=32, n_layer=2, n_head=4, dropout=0.0))
x = torch.randint(0, 97, (10, 16))
y = torch.randint(0, 97, (10, 16))


def gradient(weights: list[float] | None) -> list[torch.Tensor]:
    """The gradient of the whole batch (weights None) or of micro-batches 4 + 6 weighed so."""
    model.zero_grad(set_to_none=True)
    if weights is None:
        model(x, y)[1].backward()
    else:
        for (xs, ys), w in zip(((x[:4], y[:4]), (x[4:], y[4:])), weights):
            (model(xs, ys)[1] * w).backward()
    return [p.grad.clone() for p in model.parameters()]


def largest_gap(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max((u - v).abs().max().item() for u, v in zip(a, b))


whole = gradient(None)
by_k = gradient([1 / 2, 1 / 2])
by_share = gradient([4 / 10, 6 / 10])
print(f"divided by k = 2: largest gap {largest_gap(whole, by_k):.1e}")
print(f"weighed by n_i / N: largest gap {largest_gap(whole, by_share):.1e}")
assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(whole, by_share))
assert largest_gap(whole, by_k) > 100 * largest_gap(whole, by_share)
