# DRAFT (hand-written placeholder until notebooks/02-04 export this module; do not build on its internals)
"""The GPT-1 transformer block: post-LN (GPT-1) or pre-LN (GPT-2), tanh-GELU MLP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gpt1_lib.attention import CausalSelfAttention, GPTConfig


class MLP(nn.Module):
    """Position-wise feed-forward network d -> 4d -> d with GELU and residual dropout."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)
        self.approximate = "tanh" if config.activation == "gelu_tanh" else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class Block(nn.Module):
    """n = ln_1(x + attn(x)); h = ln_2(n + mlp(n)) as GPT-1; pre-LN when config.pre_ln."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.pre_ln = config.pre_ln
        self.attn = CausalSelfAttention(config)
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.mlp = MLP(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, kv_cache=None) -> torch.Tensor:
        if self.pre_ln:
            x = x + self.attn(self.ln_1(x), kv_cache)
            return x + self.mlp(self.ln_2(x))
        n = self.ln_1(x + self.attn(x, kv_cache))
        return self.ln_2(n + self.mlp(n))
