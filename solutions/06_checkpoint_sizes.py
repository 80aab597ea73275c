"""Chapter 06, exercise 1: predict the size of GPT-1's checkpoints before writing one.

A lean `ckpt_best.pt` holds the weights: 4 bytes per float32 parameter. A complete
`ckpt_last.pt` adds AdamW's two moments, two more tensors of the same shapes: 12 bytes per
parameter, three times the lean file. For GPT-1 (116,534,784 parameters) that is about 466 MB
and 1.40 GB, which is why chapter 08 keeps only the lean file beside the complete one on a
15 GB Google Drive. The check: write both kinds for a small model and compare the measured
ratio with the prediction (the files add a few kilobytes of structure and the RNG states).
"""

import tempfile
from pathlib import Path

import torch

from gpt1_lib.checkpoint import atomic_save
from gpt1_lib.model import GPT, GPTConfig, model_config
from gpt1_lib.optim import make_optimizer
from gpt1_lib.profiles import load_config

with torch.device("meta"):  # shapes only
    gpt1 = GPT(model_config(load_config("gpt1")))
n = sum(p.numel() for p in gpt1.parameters())
print(f"GPT-1: {n:,} parameters -> ckpt_best.pt ~ {4 * n / 1e6:.0f} MB, ckpt_last.pt ~ {12 * n / 1e9:.2f} GB")

torch.manual_seed(0)
model = GPT(GPTConfig(vocab_size=512, n_ctx=64, n_embd=128, n_layer=4, n_head=4))
optimizer = make_optimizer(model, lr=1e-3)
model(torch.randint(0, 512, (2, 64)), torch.randint(0, 512, (2, 64)))[1].backward()
optimizer.step()  # creates Adam's two moments
with tempfile.TemporaryDirectory() as tmp:
    lean, complete = Path(tmp) / "lean.pt", Path(tmp) / "complete.pt"
    atomic_save({"model": model.state_dict()}, lean)
    atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, complete)
    ratio = complete.stat().st_size / lean.stat().st_size
small = sum(p.numel() for p in model.parameters())
print(f"a {small:,}-parameter model: complete / lean = {ratio:.2f} (predicted 3)")
assert n == 116_534_784
assert abs(ratio - 3) < 0.05
