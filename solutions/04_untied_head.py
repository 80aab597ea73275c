"""Chapter 04, exercise 2: untie the LM head and count what changes.

GPT-1's head is the token embedding read backwards: one V × d tensor serves twice. Untying it
gives the head its own `nn.Linear(d, V, bias=False)` weight, initialised like every weight
(N(0, 0.02)). The prediction: exactly V·d more parameters (31,087,104 for GPT-1, a quarter of
the tied model), and two tensors that now learn apart: the embedding gets a gradient only in the
rows of tokens the input reads, the head in every row. We check the count at GPT-1's size (on
the meta device) and the separation on a small model.
"""

import torch
from torch import nn

from gpt1_lib.model import GPT, GPTConfig, model_config


def untie(model: GPT) -> GPT:
    """Give `model` an LM head with its own weight, a copy of the embedding to start from."""
    head = nn.Linear(model.config.n_embd, model.config.vocab_size, bias=False)
    head.to(model.tokens_embed.weight.device)
    with torch.no_grad():
        if not head.weight.is_meta:
            head.weight.copy_(model.tokens_embed.weight)
    model.lm_head = head
    return model


def n_parameters(model: nn.Module) -> int:
    """Parameters as PyTorch counts them: a tensor shared by two modules once."""
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    config = model_config("gpt1")
    with torch.device("meta"):
        tied = n_parameters(GPT(config))
        untied = n_parameters(untie(GPT(config)))
    extra = untied - tied
    print(f"GPT-1 tied {tied:,}, untied {untied:,}: +{extra:,} ({extra / tied:.1%} more)")
    assert extra == config.vocab_size * config.n_embd == 31_087_104

    # Untied, the embedding gets a gradient only in the rows the input read; the head in all.
    torch.manual_seed(0)
    small = GPTConfig(vocab_size=50, n_ctx=16, n_embd=32, n_layer=2, n_head=4, dropout=0.0)
    model = untie(GPT(small))
    assert model.lm_head.weight is not model.tokens_embed.weight
    assert torch.equal(model.lm_head.weight, model.tokens_embed.weight)  # same start, 2 tensors
    idx = torch.randint(0, 25, (4, 16))  # the input reads tokens 0..24 only
    _, loss = model(idx, torch.randint(50, (4, 16)))
    loss.backward()
    unread = model.tokens_embed.weight.grad[25:]
    print(
        f"untied: embedding rows never read get gradient {unread.abs().max().item():.1e}; "
        f"the head's rows for them {model.lm_head.weight.grad[25:].abs().max().item():.1e}"
    )
    assert torch.all(unread == 0) and model.lm_head.weight.grad[25:].abs().max() > 0
