"""Chapter 03, exercise 3: an ablation. Does post-LN without warmup still stall with 2 layers?

Section 7 trained 4-layer post-LN character models on tiny shakespeare with Adam at a constant
learning rate of 5e-3, and two of three seeds stayed on the unigram plateau. Here the same run with
2 layers, for the same three seeds, and the 4-layer one of seed 0 beside them, over the first 60
updates: the 2-layer models leave the plateau (10-update mean loss more than 0.3 below the
unigram entropy) in every seed, the 4-layer one does not (still within 0.1 of it). Depth is part of post-LN's trouble, as Xiong et al.
and Liu et al. (2020) report for deeper post-LN Transformers.

Run with GPT1_DATA_MIRROR set to read the corpus offline.
"""

import torch
import torch.nn.functional as F
from torch import nn

from gpt1_lib.attention import GPTConfig
from gpt1_lib.block import Block
from gpt1_lib.corpus import read_text


def char_model(n_layer: int, vocab_size: int, seed: int) -> nn.Module:
    """Section 7's post-LN model: GPT-1's init, 32 wide, context 32, tied output layer."""
    torch.manual_seed(seed)
    cfg = GPTConfig(
        vocab_size=vocab_size, n_ctx=32, n_embd=32, n_layer=n_layer, n_head=4, dropout=0.0
    )
    model = nn.ModuleDict({"wte": nn.Embedding(vocab_size, 32), "wpe": nn.Embedding(32, 32),
                           "blocks": nn.ModuleList(Block(cfg) for _ in range(n_layer))})  # fmt: skip
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
    return model


def smoothed_losses(
    ids: torch.Tensor, vocab_size: int, n_layer: int, seed: int, steps: int
) -> list[float]:
    """10-update means of the training loss, Adam at a constant 5e-3, the same batches every run."""
    model = char_model(n_layer, vocab_size, seed)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    batches = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        starts = torch.randint(len(ids) - 33, (16,), generator=batches).tolist()
        x = torch.stack([ids[s : s + 32] for s in starts])
        y = torch.stack([ids[s + 1 : s + 33] for s in starts])
        h = model["wte"](x) + model["wpe"](torch.arange(32))
        for block in model["blocks"]:
            h = block(h)
        loss = F.cross_entropy((h @ model["wte"].weight.T).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return [
        sum(losses[max(0, i - 9) : i + 1]) / len(losses[max(0, i - 9) : i + 1])
        for i in range(steps)
    ]


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    text = read_text("tinyshakespeare")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text])
    p = torch.bincount(ids).double() / len(ids)
    unigram = -(p * p.log()).sum().item()
    for n_layer, seeds in ((2, (0, 1, 2)), (4, (0,))):
        for seed in seeds:
            curve = smoothed_losses(ids, len(chars), n_layer, seed, steps=60)
            print(f"{n_layer} layers, seed {seed}: loss {curve[-1]:.3f} after 60 updates "
                  f"(unigram entropy {unigram:.3f})")  # fmt: skip
            if n_layer == 2:
                assert curve[-1] < unigram - 0.3  # left the plateau
            else:
                assert curve[-1] > unigram - 0.1  # still on it
