"""Chapter 03, exercise 2: write LayerNorm's backward pass by hand, and see why a LayerNorm
amplifies the gradient of a small input.

For one vector x of n features, with mean μ, σ = √(var + eps) and x̂ = (x − μ)/σ, LayerNorm
(weight w, bias b) returns y = w·x̂ + b. Given g = ∂loss/∂y, the gradient with respect to x is

    ∂loss/∂x = (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)) / σ,   with ĝ = w · g.

The division by σ is the point of section 6: scale x down by s and its gradient grows by s, which
is what happens to the tiny residual stream of a pre-LN stack at GPT-1's initialisation.
"""

import torch
from torch import nn


def layer_norm_input_grad(
    x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """∂loss/∂x of LayerNorm over the last axis, given ∂loss/∂y = grad_out."""
    mean = x.mean(-1, keepdim=True)
    sigma = torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps)
    x_hat = (x - mean) / sigma
    g = weight * grad_out
    return (g - g.mean(-1, keepdim=True) - x_hat * (g * x_hat).mean(-1, keepdim=True)) / sigma


if __name__ == "__main__":
    torch.manual_seed(0)
    ln = nn.LayerNorm(64).double()
    with torch.no_grad():
        ln.weight.normal_()
    x = torch.randn(4, 10, 64, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(4, 10, 64, dtype=torch.float64)
    ln(x).backward(grad_out)
    ours = layer_norm_input_grad(x.detach(), ln.weight.detach(), grad_out)
    print(f"largest difference from autograd: {(ours - x.grad).abs().max():.1e}")
    assert torch.allclose(ours, x.grad, atol=1e-10)

    base = layer_norm_input_grad(x.detach(), ln.weight.detach(), grad_out).norm()
    for s in (1.0, 0.1, 0.03):  # 0.03: about GPT-1's embeddings' std
        grown = layer_norm_input_grad(s * x.detach(), ln.weight.detach(), grad_out).norm()
        print(f"input scaled by {s:<4}: gradient × {grown / base:.1f}")
        assert abs(grown / base * s - 1) < 0.02  # the gradient grows as 1/s (eps aside)
