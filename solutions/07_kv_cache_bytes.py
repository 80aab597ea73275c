"""Chapter 07, exercise 1: predict the size of GPT-1's KV cache, then check.

Each layer keeps one key and one value per position and head: n_head * head_dim = n_embd
numbers each. For GPT-1's shape (12 layers of 768, context 512) one sequence's full cache holds
2 * 12 * 512 * 768 = 9,437,184 numbers: 36 MiB in fp32, 18 MiB in fp16, and it grows linearly
with the batch. We build the library's `KVCache` for that shape and count the bytes of its
buffers, then find the batch at which the cache outweighs the model itself (GPT-1's weights,
counted on the "meta" device, which allocates nothing).
"""

import torch

from gpt1_lib.attention import GPTConfig
from gpt1_lib.kv_cache import KVCache
from gpt1_lib.model import GPT

MiB = 2**20


def cache_bytes(config: GPTConfig, batch_size: int, dtype: torch.dtype) -> int:
    """Bytes held by the key and value buffers of a full-length KVCache."""
    cache = KVCache(config, batch_size, device="cpu", dtype=dtype)
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.k, layer.v))


def predicted_bytes(config: GPTConfig, batch_size: int, bytes_per_number: int) -> int:
    """2 (keys and values) x layers x positions x width x batch x bytes per number."""
    return 2 * config.n_layer * config.n_ctx * config.n_embd * batch_size * bytes_per_number


if __name__ == "__main__":
    gpt1 = GPTConfig()  # the defaults are GPT-1's shape
    assert (gpt1.n_layer, gpt1.n_ctx, gpt1.n_embd) == (12, 512, 768)
    for dtype, size in ((torch.float32, 4), (torch.float16, 2)):
        measured, predicted = cache_bytes(gpt1, 1, dtype), predicted_bytes(gpt1, 1, size)
        print(
            f"{str(dtype):>13}: predicted {predicted / MiB:.0f} MiB, measured {measured / MiB:.0f} MiB"
        )
        assert measured == predicted
    assert predicted_bytes(gpt1, 1, 4) == 36 * MiB and predicted_bytes(gpt1, 1, 2) == 18 * MiB
    # the cache grows with the batch: at batch 4 (fp16) it is four times as large
    assert cache_bytes(gpt1, 4, torch.float16) == 4 * 18 * MiB
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        n_params = sum(p.numel() for p in GPT(gpt1).parameters())
    batch = next(b for b in range(1, 100) if predicted_bytes(gpt1, b, 4) > 4 * n_params)
    print(f"{n_params / 1e6:.1f} M parameters: the fp32 cache outweighs them from batch {batch} on")
    assert 110e6 < n_params < 120e6 and batch == 13
