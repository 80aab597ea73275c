"""Tests of gpt1_lib.block (chapter 03): Hugging Face parity, post/pre-LN, causality, cache."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gpt1_lib.attention import GPTConfig
from gpt1_lib.block import MLP, Block


class ConcatCache:
    """The smallest KV cache: append the new keys and values along the time axis."""

    def __init__(self) -> None:
        self.k = self.v = None

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v


def make_block(seed: int = 0, **overrides) -> Block:
    fields = dict(vocab_size=50, n_ctx=16, n_embd=32, n_layer=2, n_head=4, dropout=0.0)
    torch.manual_seed(seed)
    block = Block(GPTConfig(**{**fields, **overrides}))
    with torch.no_grad():  # move every parameter off its init so a swapped one would show
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return block.eval()


def hf_block_with_weights_of(block: Block, n_ctx: int = 16):
    """Hugging Face's OpenAIGPT Block holding the same weights (Conv1D weights transposed)."""
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    from transformers.models.openai.modeling_openai import Block as HFBlock

    config = transformers.OpenAIGPTConfig(
        n_embd=block.n_embd,
        n_head=block.attn.n_head,
        n_positions=n_ctx,
        afn="gelu",  # Hugging Face's "gelu" for OpenAIGPT is gelu_new, the tanh form
        attn_pdrop=0.0,
        resid_pdrop=0.0,
        layer_norm_epsilon=1e-5,
    )
    hf = HFBlock(n_ctx, config, scale=True).eval()
    hf_state = hf.state_dict()
    assert set(hf_state) == set(block.state_dict())  # same names, submodule for submodule
    with torch.no_grad():
        for name, tensor in block.state_dict().items():
            hf_state[name].copy_(tensor.T if tensor.dim() == 2 else tensor)
    return hf


def test_matches_hugging_face_openaigpt_block_in_eval_mode():
    block = make_block()
    hf = hf_block_with_weights_of(block)
    x = torch.randn(3, 16, 32)
    with torch.no_grad():
        torch.testing.assert_close(block(x), hf(x)[0], atol=1e-5, rtol=1e-5)


def test_recorded_attention_weights_match_hugging_face():
    block = make_block()
    hf = hf_block_with_weights_of(block)
    block.attn.record_weights = True
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        block(x)
        hf_weights = hf(x, output_attentions=True)[1]
    torch.testing.assert_close(block.attn.attn_weights, hf_weights, atol=1e-5, rtol=1e-5)


def test_post_ln_and_pre_ln_follow_their_formulas():
    x = torch.randn(2, 8, 32)
    post = make_block()
    with torch.no_grad():
        n = post.ln_1(x + post.attn(x))
        torch.testing.assert_close(post(x), post.ln_2(n + post.mlp(n)))
        pre = make_block(pre_ln=True)
        h = x + pre.attn(pre.ln_1(x))
        torch.testing.assert_close(pre(x), h + pre.mlp(pre.ln_2(h)))
    assert not torch.allclose(post(x), pre(x), atol=1e-3)


def test_pre_ln_block_is_hf_gpt2_block():
    """pre_ln=True is GPT-2's block: the same weights give the same output as transformers'."""
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block

    config = transformers.GPT2Config(
        n_embd=32, n_head=4, n_positions=16, activation_function="gelu_new",
        layer_norm_epsilon=1e-5, attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0,
    )  # fmt: skip
    config._attn_implementation = "eager"  # a block on its own, outside GPT2Model
    hf = GPT2Block(config, layer_idx=0).eval()
    block = make_block(pre_ln=True)
    hf_state = hf.state_dict()
    with torch.no_grad():
        for name, tensor in block.state_dict().items():
            transposed = name.endswith("weight") and tensor.dim() == 2  # Conv1D vs nn.Linear
            hf_state[name].copy_(tensor.T if transposed else tensor)
    x = torch.randn(2, 10, 32)
    future = ~torch.ones(10, 10, dtype=torch.bool).tril()
    mask = torch.zeros(1, 1, 10, 10).masked_fill(future, float("-inf"))  # the model's job in HF
    with torch.no_grad():
        theirs = hf(x, attention_mask=mask)
        theirs = theirs[0] if isinstance(theirs, tuple) else theirs
        torch.testing.assert_close(block(x), theirs, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(make_block()(x), theirs, atol=1e-3)  # post-LN is not GPT-2's


@pytest.mark.parametrize("activation, form", [("gelu_tanh", "tanh"), ("gelu", "none")])
def test_mlp_is_four_times_wider_with_the_chosen_gelu(activation, form):
    config = GPTConfig(vocab_size=50, n_ctx=16, n_embd=32, n_head=4, activation=activation)
    mlp = MLP(config).eval()
    assert mlp.c_fc.out_features == 4 * 32 and mlp.c_proj.in_features == 4 * 32
    x = torch.randn(2, 5, 32) * 3
    expected = mlp.c_proj(F.gelu(mlp.c_fc(x), approximate=form))
    other = mlp.c_proj(F.gelu(mlp.c_fc(x), approximate="none" if form == "tanh" else "tanh"))
    torch.testing.assert_close(mlp(x), expected)
    assert not torch.allclose(mlp(x), other, atol=1e-6)


@pytest.mark.parametrize("pre_ln", [False, True])
def test_changing_later_tokens_never_changes_earlier_outputs(pre_ln):
    block = make_block(pre_ln=pre_ln)
    x = torch.randn(2, 16, 32)
    changed = x.clone()
    changed[:, 9:] = torch.randn(2, 7, 32)
    with torch.no_grad():
        before, after = block(x), block(changed)
    torch.testing.assert_close(after[:, :9], before[:, :9], atol=1e-6, rtol=0)
    assert not torch.allclose(after[:, 9:], before[:, 9:], atol=1e-3)


@pytest.mark.parametrize("pre_ln", [False, True])
def test_dropout_acts_only_in_training(pre_ln):
    block = make_block(dropout=0.1, pre_ln=pre_ln)
    x = torch.randn(2, 16, 32)
    with torch.no_grad():
        assert torch.equal(block.eval()(x), block(x))
        block.train()
        assert not torch.allclose(block(x), block(x))
    dropouts = [m for m in block.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 2 and block.attn.dropout == 0.1  # two residual branches + weights


@pytest.mark.parametrize("pre_ln", [False, True])
def test_kv_cache_path_equals_the_full_forward(pre_ln):
    block = make_block(pre_ln=pre_ln)
    x = torch.randn(2, 16, 32)
    cache = ConcatCache()
    with torch.no_grad():
        full = block(x)
        steps = [block(x[:, :6], kv_cache=cache)]
        steps += [block(x[:, t : t + 1], kv_cache=cache) for t in range(6, 10)]
        steps.append(block(x[:, 10:], kv_cache=cache))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pre_ln", [False, True])
def test_bad_input_errors_say_what_to_do(pre_ln):
    block = make_block(pre_ln=pre_ln)
    with pytest.raises(ValueError, match="unsqueeze"):
        block(torch.randn(16, 32))
    with pytest.raises(ValueError, match=r"\(batch, time, 32\)"):
        block(torch.randn(1, 4, 64))
    with pytest.raises(ValueError, match="longer than n_ctx=16"):
        block(torch.randn(1, 17, 32))
