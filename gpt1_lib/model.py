# DRAFT (hand-written placeholder until notebooks/02-04 export this module; do not build on its internals)
"""GPT-1: embeddings, a stack of post-LN blocks, an LM head tied to the token embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gpt1_lib.attention import GPTConfig
from gpt1_lib.block import Block

__all__ = ["GPT", "GPTConfig"]


class GPT(nn.Module):
    """The GPT-1 language model; parameter names follow Hugging Face's OpenAIGPT."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tokens_embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.positions_embed = nn.Embedding(config.n_ctx, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.tokens_embed.weight  # tied: one tensor
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, kv_cache=None):
        """idx (B, T) token ids -> (logits (B, T, V), loss or None).

        kv_cache: optional per-layer caches (indexable, with `.length` = positions already
        cached); positions then continue from there (chapter 06).
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must be (batch, time) token ids, got shape {tuple(idx.shape)}")
        B, T = idx.shape
        past = 0 if kv_cache is None else kv_cache.length
        if past + T > self.config.n_ctx:
            raise ValueError(
                f"sequence of {past + T} tokens is longer than n_ctx={self.config.n_ctx}: "
                f"crop the input to its last {self.config.n_ctx} tokens"
            )
        if idx.numel():
            lo, hi = torch.aminmax(idx)
            if lo < 0 or hi >= self.config.vocab_size:
                raise ValueError(
                    f"token ids must be in [0, {self.config.vocab_size}), got min {int(lo)} "
                    f"max {int(hi)}: is the tokenizer the one this model was trained with?"
                )
        pos = torch.arange(past, past + T, device=idx.device)
        x = self.drop(self.tokens_embed(idx) + self.positions_embed(pos))
        for i, block in enumerate(self.h):
            x = block(x, None if kv_cache is None else kv_cache[i])
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss
