"""Chapter 08, exercise 3: how far is the `t4` run from a compute-optimal one?

Hoffmann et al. (2022, "Chinchilla") found that for a fixed compute budget a model should see
about 20 tokens per parameter. The `t4` preset's GPT-1-sized run reads 3,000 × 64 × 512 = 98M
tokens for its 91.7M parameters: about one token per parameter, twenty times short. Reaching 20
would take about 56,000 updates, 1.8 billion tokens: by §4's arithmetic 16 to 32 hours of a T4
at 30-15 % MFU, many Colab sessions, which is why the chapter's run is a short one (and why the
`quick` run, 13.9M parameters for the same 98M tokens, is closer to the ratio).
"""

import torch

from gpt1_lib.gpu_peaks import peak_flops
from gpt1_lib.model import GPT, model_config
from gpt1_lib.precision import model_flops_per_token
from gpt1_lib.profiles import load_config

cfg = load_config("t4")
shape = model_config(cfg)
with torch.device("meta"):
    model = GPT(shape)
n = sum(p.numel() for p in model.parameters())
per_update = cfg["batch_size"] * cfg["grad_accum"] * cfg["n_ctx"]
ratio = per_update * cfg["max_steps"] / n
updates = round(20 * n / per_update)
per_token = model_flops_per_token(model)
hours = [20 * n * per_token / (peak_flops("Tesla T4") * mfu) / 3600 for mfu in (0.30, 0.15)]
print(f"t4 run: {ratio:.2f} tokens per parameter; 20 per parameter: {updates:,} updates, "
      f"{20 * n / 1e9:.2f}B tokens, {hours[0]:.0f}-{hours[1]:.0f} h on a T4")
assert 0.9 < ratio < 1.2 and 50_000 < updates < 60_000 and 15 < hours[0] < hours[1] < 40
