"""Appendix A3, section 2: the fast decoding path (`Decoder`, `DecodeLinear`, `PackedLinear`)
gives the logits of the full forward pass and the same greedy tokens as no cache and as
`transformers`."""

from __future__ import annotations

import tempfile

import pytest
import torch
import transformers
from decoding_helpers import assert_cache_changes_nothing
from torch import nn

from gpt1_lib.fast_decode import DecodeLinear, Decoder, PackedLinear, decode_linear
from gpt1_lib.generate import generate
from gpt1_lib.model import GPT, GPTConfig

SHAPE = dict(vocab_size=300, n_ctx=16, n_embd=32, n_layer=2, n_head=4)


def random_model(pre_ln: bool, seed: int = 0) -> GPT:
    """Weights large enough that the logits spread like a trained model's (no near-ties)."""
    torch.manual_seed(seed)
    net = GPT(GPTConfig(**SHAPE, pre_ln=pre_ln, dropout=0.1))
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    return net.eval()


@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize(("n_in", "n_out", "bias"), [(32, 96, True), (128, 32, True), (32, 300, False)])
def test_decode_linear_is_the_linear_layer(batch, n_in, n_out, bias, parts):
    torch.manual_seed(0)
    linear = nn.Linear(n_in, n_out, bias=bias)
    x = torch.randn(batch, n_in)
    fast = DecodeLinear(linear, batch, parts)
    assert n_out % fast.parts == 0 and fast.parts <= parts  # blocks of whole outputs
    assert fast.columns == (batch == 1 and n_out >= 8 * n_in)  # the layout depends on the shape
    with torch.no_grad():
        assert torch.allclose(fast(x), linear(x), atol=1e-6, rtol=0)
        other = torch.randn(5 - batch, n_in)  # a layout chosen for one batch size serves any
        assert torch.allclose(fast(other), linear(other), atol=1e-6, rtol=0)


@pytest.mark.skipif(not PackedLinear.fits(torch.ones(1), 2), reason="torch built without oneDNN")
@pytest.mark.parametrize(("n_in", "n_out", "bias"), [(32, 96, True), (128, 32, True), (32, 300, False)])
def test_packed_linear_is_the_linear_layer(n_in, n_out, bias):
    torch.manual_seed(0)
    linear = nn.Linear(n_in, n_out, bias=bias)
    packed = decode_linear(linear, 4)
    assert isinstance(packed, PackedLinear)  # a batch on a CPU gets the packed copy
    with torch.no_grad():
        for x in (torch.randn(4, n_in), torch.randn(1, n_in), torch.randn(4, 3, n_in)[:, -1]):
            assert torch.allclose(packed(x), linear(x), atol=1e-5, rtol=0)  # any rows, strided
        linear.weight.zero_()  # a copy: the packed layer keeps the weights it was built from
        assert packed(torch.ones(4, n_in)).abs().sum() > 0


def test_one_row_keeps_the_blocks():
    assert isinstance(decode_linear(nn.Linear(32, 96), 1), DecodeLinear)
    assert not PackedLinear.fits(torch.ones(1, dtype=torch.float64), 4)  # fp32 only


@pytest.mark.parametrize("pre_ln", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_steps_give_the_logits_of_the_full_forward(pre_ln, batch):
    model = random_model(pre_ln)
    idx = torch.randint(0, SHAPE["vocab_size"], (batch, SHAPE["n_ctx"]),
                        generator=torch.Generator().manual_seed(1))
    decoder = Decoder(model, batch)
    buffers = [(layer.k.data_ptr(), layer.v.data_ptr()) for layer in decoder.cache.layers]
    with torch.inference_mode():
        full = model(idx)[0]
        assert torch.allclose(decoder.prefill(idx[:, :5]), full[:, 4], atol=1e-5, rtol=0)
        for t in range(5, SHAPE["n_ctx"]):
            step = decoder.step(idx[:, t : t + 1])
            assert torch.allclose(step, full[:, t], atol=1e-5, rtol=0), t
    assert decoder.length == SHAPE["n_ctx"]
    # written in place: the preallocated buffers, never new ones
    assert buffers == [(layer.k.data_ptr(), layer.v.data_ptr()) for layer in decoder.cache.layers]
    with pytest.raises(ValueError, match="full"):
        decoder.step(idx[:, :1])


def test_pre_ln_steps_use_the_final_layer_norm():
    model = random_model(pre_ln=True)
    idx = torch.tensor([[3, 1, 4, 1, 5]])
    decoder = Decoder(model, 1)
    with torch.inference_mode():
        decoder.prefill(idx[:, :4])
        with_ln_f = decoder.step(idx[:, 4:])
        model.ln_f = nn.Identity()  # the same weights without ln_f: other logits
        decoder.prefill(idx[:, :4])
        assert not torch.allclose(decoder.step(idx[:, 4:]), with_ln_f, atol=1e-3)


def test_a_step_skips_the_input_check_and_the_prefill_keeps_it(monkeypatch):
    """The step never calls GPT.forward's check (torch.aminmax over the ids: a host sync on a
    GPU); the prompt still goes through it."""
    model = random_model(pre_ln=False)
    decoder = Decoder(model, 1)
    with torch.inference_mode():
        decoder.prefill(torch.tensor([[1, 2, 3]]))

        def no_sync(*args, **kwargs):
            raise AssertionError("the decode step checked its input")

        monkeypatch.setattr(torch, "aminmax", no_sync)
        decoder.step(torch.tensor([[4]]))
        with pytest.raises(AssertionError, match="checked its input"):
            decoder.prefill(torch.tensor([[1, 2, 3]]))


@pytest.mark.parametrize("pre_ln", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_fast_cache_gives_the_uncached_tokens_past_n_ctx(pre_ln, batch):
    model = random_model(pre_ln, seed=2)
    prompts = torch.randint(0, SHAPE["vocab_size"], (batch, 5),
                            generator=torch.Generator().manual_seed(3))
    assert_cache_changes_nothing(model, prompts, 3 * SHAPE["n_ctx"])  # slides 2/3 of the time


def test_training_mode_steps_through_the_model_forward():
    model = random_model(pre_ln=False).train()  # dropout 0.1 on: the forward applies it
    decoder = Decoder(model, 1)
    with torch.no_grad():
        decoder.prefill(torch.tensor([[1, 2, 3]]))
        torch.manual_seed(5)
        step = decoder.step(torch.tensor([[4]]))
        model.eval()
        decoder.prefill(torch.tensor([[1, 2, 3]]))
        assert not torch.allclose(step, decoder.step(torch.tensor([[4]])), atol=1e-3)


# --- the same greedy tokens as transformers ---------------------------------------------------


def hf_config(cls, **extra):
    return cls(vocab_size=SHAPE["vocab_size"], n_positions=SHAPE["n_ctx"], n_embd=SHAPE["n_embd"],
               n_layer=SHAPE["n_layer"], n_head=SHAPE["n_head"], **extra)


@pytest.mark.parametrize("batch", [1, 2])
def test_greedy_tokens_equal_hf_gpt2_with_its_cache(batch):
    from gpt1_lib.pretrained import state_dict_from_gpt2

    torch.manual_seed(0)
    gpt2 = transformers.GPT2LMHeadModel(
        hf_config(transformers.GPT2Config, activation_function="gelu_new")).eval()
    with torch.no_grad():
        for p in gpt2.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    ours = GPT(GPTConfig(**SHAPE, pre_ln=True)).eval()
    ours.load_state_dict(state_dict_from_gpt2(gpt2.state_dict()))
    prompt = torch.randint(0, SHAPE["vocab_size"], (batch, 4),
                           generator=torch.Generator().manual_seed(4))
    n_new = SHAPE["n_ctx"] - 4  # transformers' GPT-2 stops at its last position
    with torch.inference_mode():
        theirs = gpt2.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                               use_cache=True, max_new_tokens=n_new, min_new_tokens=n_new,
                               pad_token_id=0)
    out = generate(ours, prompt, n_new, temperature=0)
    assert torch.equal(out, theirs) and out[:, 4:].unique().numel() > 5


def test_greedy_tokens_equal_hf_openai_gpt():
    model = random_model(pre_ln=False, seed=6)
    prompt = torch.randint(0, SHAPE["vocab_size"], (2, 4), generator=torch.Generator().manual_seed(5))
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        theirs = transformers.OpenAIGPTLMHeadModel.from_pretrained(tmp).eval()
    n_new = SHAPE["n_ctx"] - 4
    with torch.inference_mode():
        expected = theirs.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                   max_new_tokens=n_new, min_new_tokens=n_new, pad_token_id=0)
    out = generate(model, prompt, n_new, temperature=0)
    assert torch.equal(out, expected) and out[:, 4:].unique().numel() > 5
