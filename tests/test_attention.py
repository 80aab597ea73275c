"""Tests of gpt1_lib.attention (chapter 02) and its CPU training path, gpt1_lib.cpu_attention
(appendix A3): the paths agree, causality, dropout, KV cache."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gpt1_lib.attention import CausalSelfAttention, GPTConfig, causal_mask, manual_attention
from gpt1_lib.cpu_attention import KeepMaskDropout, blocked_causal_attention


class ConcatCache:
    """The smallest KV cache: append the new keys and values along the time axis."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v


def small_config(**overrides) -> GPTConfig:
    fields = dict(vocab_size=50, n_ctx=16, n_embd=32, n_layer=2, n_head=4, dropout=0.0)
    return GPTConfig(**{**fields, **overrides})


def make_layer(seed: int = 0, **overrides) -> CausalSelfAttention:
    torch.manual_seed(seed)
    layer = CausalSelfAttention(small_config(**overrides))
    with torch.no_grad():  # nonzero biases, so a wrong bias split would show
        layer.c_attn.bias.normal_()
        layer.c_proj.bias.normal_()
    return layer.eval()


def test_causal_mask_is_lower_triangular_and_offset_for_cached_keys():
    assert torch.equal(causal_mask(3, 3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]]).bool())
    offset = causal_mask(2, 4)  # two new queries after two cached positions
    assert torch.equal(offset, torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]).bool())
    with pytest.raises(ValueError, match="q_len <= k_len"):
        causal_mask(4, 2)


def test_manual_attention_matches_pytorch_sdpa():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 3, 10, 8)
    out, weights = manual_attention(q, k, v)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 10))
    assert (weights.triu(1) == 0).all()


def test_manual_attention_with_cached_keys_matches_an_explicit_mask():
    torch.manual_seed(0)
    q = torch.randn(1, 2, 3, 8)
    k, v = torch.randn(2, 1, 2, 7, 8)
    out, _ = manual_attention(q, k, v)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(3, 7))
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_fast_and_manual_paths_agree_and_record_weights():
    layer = make_layer()
    x = torch.randn(3, 16, 32)
    with torch.no_grad():
        fast = layer(x)
        assert layer.attn_weights is None
        layer.record_weights = True
        slow = layer(x)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    assert layer.attn_weights.shape == (3, 4, 16, 16)
    assert (layer.attn_weights.triu(1) == 0).all()


def test_layer_equals_heads_written_out():
    """c_attn splits into q|k|v, each into heads of n_embd // n_head columns, then c_proj."""
    layer = make_layer()
    x = torch.randn(2, 5, 32)
    q, k, v = layer.c_attn(x).split(32, dim=-1)
    heads = [
        manual_attention(q[..., h : h + 8], k[..., h : h + 8], v[..., h : h + 8])[0]
        for h in range(0, 32, 8)
    ]
    expected = layer.c_proj(torch.cat(heads, dim=-1))
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("record_weights", [False, True])
def test_changing_later_tokens_never_changes_earlier_outputs(record_weights):
    layer = make_layer()
    layer.record_weights = record_weights
    x = torch.randn(2, 16, 32)
    with torch.no_grad():
        before = layer(x)
        for t in (0, 7, 14):
            changed = x.clone()
            changed[:, t + 1 :] = torch.randn(2, 15 - t, 32)
            after = layer(changed)
            torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=1e-6, rtol=0)
            assert not torch.allclose(after[:, t + 1 :], before[:, t + 1 :], atol=1e-3)


@pytest.mark.parametrize("record_weights", [False, True])
def test_dropout_acts_only_in_training(record_weights):
    layer = make_layer(dropout=0.5)
    layer.record_weights = record_weights
    x = torch.randn(2, 16, 32)
    with torch.no_grad():
        layer.eval()
        assert torch.equal(layer(x), layer(x))
        layer.train()
        torch.manual_seed(1)
        first = layer(x)
        torch.manual_seed(2)
        second = layer(x)
    assert not torch.allclose(first, second)


def test_zero_dropout_in_training_equals_eval():
    layer = make_layer(dropout=0.0)
    x = torch.randn(2, 16, 32)
    with torch.no_grad():
        evaluated = layer.eval()(x)
        trained = layer.train()(x)
    torch.testing.assert_close(trained, evaluated)


@pytest.mark.parametrize("record_weights", [False, True])
@pytest.mark.parametrize("chunks", [[16], [1] * 16, [5, 1, 4, 6], [3, 13]])
def test_kv_cache_path_equals_the_full_forward(chunks, record_weights):
    """One token at a time (T == 1), several after cached ones (T < S), or all at once."""
    layer = make_layer()
    layer.record_weights = record_weights
    x = torch.randn(2, 16, 32)
    cache = ConcatCache()
    with torch.no_grad():
        full = layer(x)
        pieces, start = [], 0
        for size in chunks:
            pieces.append(layer(x[:, start : start + size], kv_cache=cache))
            start += size
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.k.shape == (2, 4, 16, 8)


def test_bad_config_errors_say_what_to_do():
    with pytest.raises(ValueError, match="not divisible by n_head"):
        GPTConfig(n_embd=100, n_head=12)
    with pytest.raises(ValueError, match="positive integer"):
        GPTConfig(n_layer=0)
    with pytest.raises(ValueError, match="dropout"):
        GPTConfig(dropout=1.0)
    with pytest.raises(ValueError, match="activation"):
        GPTConfig(activation="relu")
    assert GPTConfig().head_dim == 64


def test_bad_input_errors_say_what_to_do():
    layer = make_layer()
    with pytest.raises(ValueError, match="unsqueeze"):
        layer(torch.randn(16, 32))  # no batch dimension
    with pytest.raises(ValueError, match=r"\(batch, time, 32\)"):
        layer(torch.randn(1, 16, 31))  # wrong width
    with pytest.raises(ValueError, match="longer than n_ctx=16"):
        layer(torch.randn(1, 17, 32))
    cache = ConcatCache()
    layer(torch.randn(1, 16, 32), kv_cache=cache)
    with pytest.raises(ValueError, match="more than n_ctx=16"):
        layer(torch.randn(1, 1, 32), kv_cache=cache)


@pytest.mark.parametrize("blocks", [1, 2, 4])
def test_blocked_training_path_without_drops_equals_the_fused_kernel(blocks):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 32, 8, requires_grad=True) for _ in range(3))
    blocked = blocked_causal_attention(q, k, v, dropout_p=1e-12, blocks=blocks)
    fused = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(blocked, fused, atol=1e-5)
    grads = torch.autograd.grad(blocked.sum(), (q, k, v))
    fused_grads = torch.autograd.grad(fused.sum(), (q, k, v))
    for ours, theirs in zip(grads, fused_grads):
        assert torch.allclose(ours, theirs, atol=1e-5)


def test_keep_mask_dropout_drops_at_rate_p_scales_and_masks_the_gradient():
    torch.manual_seed(0)
    x = torch.ones(400, 500, requires_grad=True)
    y = KeepMaskDropout.apply(x, 0.1)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.005
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.9))
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(grad, y.detach())  # d(x * keep / 0.9)/dx = keep / 0.9


def test_cpu_training_with_dropout_takes_the_blocked_path_and_stays_causal():
    layer = CausalSelfAttention(GPTConfig(n_ctx=16, n_embd=32, n_head=4, dropout=0.1)).train()
    x = torch.randn(2, 16, 32)
    changed = x.clone()
    changed[:, 9:] = torch.randn(2, 7, 32)
    torch.manual_seed(1)
    out = layer(x)
    torch.manual_seed(1)
    out_changed = layer(changed)
    torch.manual_seed(1)
    again = layer(x)
    assert torch.equal(out, again)  # the same seed gives the same dropout masks
    assert torch.equal(out[:, :9], out_changed[:, :9])
    assert not torch.equal(out, layer.eval()(x))  # dropout did act in training
