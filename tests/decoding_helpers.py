"""Shared by the decoding tests (test_sample.py, test_kv_cache.py): greedy picking, and the
check that a KV cache, and the fast loop of a CPU, change nothing but the speed."""

from __future__ import annotations

import torch

from gpt1_lib.fast_decode import fast_decode_steps
from gpt1_lib.generate import decode_steps
from gpt1_lib.model import GPT


def greedy(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(-1, keepdim=True)


def assert_cache_changes_nothing(model: GPT, prompts: torch.Tensor, n_new: int) -> None:
    """Cached and uncached decoding give the same greedy tokens and (to 1e-5) the same logits,
    with the simple loop (`decode_steps`) and with the fast one (`fast_decode_steps`)."""
    with torch.inference_mode():
        runs = [list(loop(model, prompts, n_new, greedy, use_cache=use))
                for loop in (decode_steps, fast_decode_steps) for use in (True, False)]  # fmt: skip
    tokens = [torch.cat([t for _, t in steps], 1) for steps in runs]
    assert all(torch.equal(tokens[0], other) for other in tokens[1:])
    assert tokens[0].unique().numel() > 5  # varied text, not one token repeated
    for other in runs[1:]:
        for (a, _), (b, _) in zip(runs[0], other):
            assert torch.allclose(a, b, atol=1e-5, rtol=0)
