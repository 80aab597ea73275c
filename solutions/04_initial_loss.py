"""Chapter 04, exercise 3: predict a fresh model's loss before measuring it.

Chapter 04 §5: the stack ends in a LayerNorm, so each component of the last vector h has
variance about 1, and each logit h·e_k sums d products with weights of standard deviation 0.02:
σ = 0.02·√d. If the logits do not depend on the context, the cross-entropy against targets the
model cannot predict is about ln V + σ²/2. Predict it for V = 8,192 and widths 64, 256 and 768
(σ²/2 = 0.013, 0.051 and 0.154), then measure on random tokens and random targets.

The answer: pre-LN models land on the prediction at every width; post-LN models (GPT-1's) land
above it, further the wider they are. The assumption fails for post-LN: there the residual
stream is the token's own embedding, re-normalised by each block's LayerNorms, so h points
along e_t and the logit of the input token itself is large. Random targets pay for that spike in
the log-sum-exp. The check: asked to predict the *input* token, a fresh post-LN model is far
below ln V already (at d = 768 it is almost an identity map); a fresh pre-LN model, where the
embedding is one term of a sum that `ln_f` normalises, only a little.
"""

import math

import torch

from gpt1_lib.model import GPT, GPTConfig


def initial_losses(vocab_size: int, width: int, pre_ln: bool) -> tuple[float, float]:
    """(loss on random targets, loss when the target is the input token) of a fresh 2-layer
    model on random tokens."""
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=vocab_size, n_ctx=64, n_embd=width, n_layer=2,
                       n_head=4, dropout=0.0, pre_ln=pre_ln)  # fmt: skip
    model = GPT(config).eval()
    idx, targets = torch.randint(vocab_size, (2, 16, 64)).unbind(0)
    with torch.no_grad():
        return model(idx, targets)[1].item(), model(idx, idx)[1].item()


if __name__ == "__main__":
    torch.set_num_threads(1)
    V = 8192
    excess = {}
    for width in (64, 256, 768):
        predicted = math.log(V) + (0.02 * math.sqrt(width)) ** 2 / 2
        for pre_ln in (True, False):
            random_targets, own_token = initial_losses(V, width, pre_ln)
            print(
                f"d={width:>3} {'pre' if pre_ln else 'post'}-LN: predicted {predicted:.3f}, "
                f"measured {random_targets:.3f}; target = input token: {own_token:.3f} "
                f"(ln V = {math.log(V):.3f})"
            )
            if pre_ln:
                assert abs(random_targets - predicted) < 0.03, (width, random_targets, predicted)
                assert own_token > math.log(V) - 0.6  # only a weak pull towards the input token
            else:
                excess[width] = random_targets - predicted
                assert own_token < math.log(V) - 0.8  # h points along its own token's embedding
    assert 0 <= excess[64] < excess[256] < excess[768] and excess[768] > 0.5, excess
