"""Shared by the decoding tests (test_sample.py, test_kv_cache.py): greedy picking, and the
check that a KV cache changes nothing but the speed."""

from __future__ import annotations

import torch

from gpt1_lib.fast_decode import decode_steps
from gpt1_lib.model import GPT


def greedy(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(-1, keepdim=True)


def assert_cache_changes_nothing(model: GPT, prompts: torch.Tensor, n_new: int) -> None:
    """Cached and uncached decoding give the same greedy tokens and (to 1e-5) the same logits."""
    with torch.inference_mode():
        cached = list(decode_steps(model, prompts, n_new, greedy, use_cache=True))
        plain = list(decode_steps(model, prompts, n_new, greedy, use_cache=False))
    tokens = [torch.cat([t for _, t in steps], 1) for steps in (cached, plain)]
    assert torch.equal(tokens[0], tokens[1])
    assert tokens[0].unique().numel() > 5  # varied text, not one token repeated
    for (a, _), (b, _) in zip(cached, plain):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)
