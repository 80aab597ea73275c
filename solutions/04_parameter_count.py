"""Chapter 04, exercise 1: predict a model's parameter count from its config, then check.

Per block: the fused Q/K/V projection (d -> 3d) and the attention's output projection (d -> d)
hold 4d² + 4d; the MLP (d -> 4d -> d) 8d² + 5d; two LayerNorms 4d: 12d² + 13d in all. Around
the blocks: the token embedding V·d (which is also the LM head: tied, so counted once), the
position table n_ctx·d, and with `pre_ln` a final LayerNorm `ln_f` of 2d. We predict every
profile's model and a few odd shapes, then count the real modules on the meta device (no memory).
"""

import torch

from gpt1_lib.model import GPT, GPTConfig, model_config
from gpt1_lib.profiles import PROFILES


def predicted_parameters(config: GPTConfig) -> int:
    """The parameter count of `GPT(config)` from the formula above."""
    d = config.n_embd
    per_block = 12 * d * d + 13 * d
    final_ln = 2 * d if config.pre_ln else 0
    return config.vocab_size * d + config.n_ctx * d + config.n_layer * per_block + final_ln


def counted_parameters(config: GPTConfig) -> int:
    """What PyTorch counts: `parameters()` yields the tied matrix once."""
    with torch.device("meta"):
        return sum(p.numel() for p in GPT(config).parameters())


if __name__ == "__main__":
    configs = {name: model_config(name) for name in PROFILES}
    configs["odd, post-LN"] = GPTConfig(vocab_size=1000, n_ctx=100, n_embd=96, n_layer=3, n_head=4)
    configs["odd, pre-LN"] = GPTConfig(
        vocab_size=1000, n_ctx=100, n_embd=96, n_layer=3, n_head=4, pre_ln=True
    )
    for name, config in configs.items():
        predicted, counted = predicted_parameters(config), counted_parameters(config)
        print(f"{name:13s} predicted {predicted:>12,}   counted {counted:>12,}")
        assert predicted == counted, (name, predicted, counted)
    assert predicted_parameters(model_config("gpt1")) == 116_534_784  # GPT-1, as chapter 04 says
