"""Chapter 08, exercise 1: how long would the `gpt1` preset take on eight A100s?

§4's estimate, redone for a bigger machine: training FLOPs per token (chapter 06's
`flops_per_token`: 6 per weight plus the attention scores) times the tokens of the run, over
the machine's peak times its MFU. The `gpt1` preset reads 100,000 updates × 64 × 512 tokens =
3.28 billion tokens at about 0.75 GFLOP each: 2.5 × 10¹⁸ FLOPs. Eight A100s (312 TFLOP/s of
bf16 each) at 40 % MFU, a good figure for a compiled, data-parallel run of this size, do that in
about 40 minutes; one T4 at 15-30 % needs 35-70 hours (§4's table). GPT-1 itself trained for
a month on eight GPUs of 2018.
"""

import torch

from gpt1_lib.gpu_peaks import peak_flops
from gpt1_lib.model import GPT, model_config
from gpt1_lib.precision import model_flops_per_token
from gpt1_lib.profiles import load_config

cfg = load_config("gpt1")
shape = model_config(cfg)
with torch.device("meta"):  # shapes only
    model = GPT(shape)
n = sum(p.numel() for p in model.parameters())
per_token = model_flops_per_token(model)
tokens = cfg["batch_size"] * cfg["grad_accum"] * cfg["n_ctx"] * cfg["max_steps"]
total = per_token * tokens
eight_a100 = 8 * peak_flops("NVIDIA A100-SXM4-40GB") * 0.40
one_t4 = [peak_flops("Tesla T4") * mfu for mfu in (0.30, 0.15)]
print(f"{per_token / 1e9:.2f} GFLOP/token x {tokens / 1e9:.2f}B tokens = {total:.2e} FLOPs")
print(f"8 x A100 at 40 % MFU: {total / eight_a100 / 60:.0f} min")
print(f"1 x T4 at 30-15 % MFU: {total / one_t4[0] / 3600:.0f}-{total / one_t4[1] / 3600:.0f} h")
assert tokens == 100_000 * 64 * 512
assert 0.7e9 < per_token < 0.8e9 and 30 < total / eight_a100 / 60 < 50
