"""Chapter 03, exercise 1: predict how fast a plain stack loses its gradient, then check.

A stack of `Linear(d, d)` + GELU layers at GPT-1's initialisation (weights N(0, 0.02), biases 0)
and no `x +` shortcut. Each layer multiplies a small signal, and on the way back its gradient, by
about `0.02 · √d · ½`: a random N(0, σ²) matrix scales a vector's length by `σ√d`, and GELU's
slope at 0 is ½. So each extra layer should divide the first layer's gradient by about
`1 / (0.01 √d)`: 0.057 for d = 32, 0.08 for d = 64, 0.11 for d = 128. We fit the measured factor
as the slope of log(gradient) against depth.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def first_layer_gradient(depth: int, width: int) -> float:
    """‖grad‖ of the first layer's weight in a plain Linear + GELU stack at N(0, 0.02)."""
    torch.manual_seed(0)
    layers = [nn.Linear(width, width) for _ in range(depth)]
    for layer in layers:
        nn.init.normal_(layer.weight, std=0.02)
        nn.init.zeros_(layer.bias)
    x = torch.randn(32, width)
    for layer in layers:
        x = F.gelu(layer(x))
    F.mse_loss(x, torch.ones_like(x)).backward()
    return layers[0].weight.grad.norm().item()


def factor_per_layer(width: int, depths: range = range(3, 13)) -> float:
    """exp of the least-squares slope of log(gradient) against depth."""
    logs = [math.log(first_layer_gradient(d, width)) for d in depths]
    mean_d, mean_g = sum(depths) / len(depths), sum(logs) / len(logs)
    slope = sum((d - mean_d) * (g - mean_g) for d, g in zip(depths, logs)) / sum(
        (d - mean_d) ** 2 for d in depths
    )
    return math.exp(slope)


if __name__ == "__main__":
    torch.set_num_threads(1)
    for width in (32, 64, 128):
        predicted, measured = 0.02 * math.sqrt(width) / 2, factor_per_layer(width)
        print(f"width {width:>3}: predicted {predicted:.3f} per layer, measured {measured:.3f}")
        assert abs(measured / predicted - 1) < 0.2, (width, measured, predicted)
