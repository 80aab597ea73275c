# DRAFT (hand-written placeholder until notebooks/02-04 export this module; do not build on its internals)
"""Causal multi-head self-attention as in GPT-1 (HF OpenAIGPT layout), and GPTConfig."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GPTConfig:
    """Hyperparameters of a GPT-1-style model; the defaults are GPT-1's own."""

    vocab_size: int = 40478
    n_ctx: int = 512
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    dropout: float = 0.1  # on embeddings, attention probabilities and each residual branch
    layer_norm_eps: float = 1e-5
    activation: str = "gelu_tanh"  # GPT-1's tanh GELU; "gelu" is the exact (erf) form
    pre_ln: bool = False  # False: GPT-1's post-LN blocks; True: GPT-2's pre-LN

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_ctx", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}: "
                "each head gets n_embd // n_head dimensions, so choose n_head dividing n_embd"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ("gelu_tanh", "gelu"):
            raise ValueError(f"activation must be 'gelu_tanh' or 'gelu', got {self.activation!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def causal_mask(q_len: int, k_len: int, device=None) -> torch.Tensor:
    """Boolean (q_len, k_len) mask: query i (the last q_len of k_len positions) sees keys <= i."""
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(diagonal=k_len - q_len)


def manual_attention(q, k, v, dropout_p: float = 0.0, training: bool = False):
    """Scaled dot-product attention written out; returns (output, attention weights)."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    mask = causal_mask(q.size(-2), k.size(-2), device=q.device)
    weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return F.dropout(weights, dropout_p, training) @ v, weights


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: fused c_attn (d -> 3d), SDPA fast path, c_proj."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.record_weights = False  # True: use the manual path and keep the attention maps
        self.attn_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, kv_cache=None) -> torch.Tensor:
        """x: (B, T, C). kv_cache: optional object with update(k, v) -> (all k, all v)."""
        if x.dim() != 3:
            raise ValueError(f"attention expects (batch, time, channels), got shape {tuple(x.shape)}")
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)
        p = self.dropout if self.training else 0.0
        if self.record_weights:
            y, weights = manual_attention(q, k, v, p, self.training)
            self.attn_weights = weights.detach()
        elif k.size(2) == T:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif T == 1:  # one new token attends to every cached position
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:
            mask = causal_mask(T, k.size(2), device=x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))
