"""`load(source)`: one loader for every place a GPT comes from, each with its own tokenizer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_sample import GPT1_VOCAB, id1_model, train_tiny_run, write_gpt1_tokenizer

from gpt1_lib.load import load
from gpt1_lib.model import GPT, GPTConfig
from gpt1_lib.tokenizer import EOS_ID


def write_release(model: GPT, folder) -> None:
    """`model` laid out as OpenAI released GPT-1: positions, tokens, then 12 arrays per block,
    each Linear weight as (1, in, out), one flat float32 vector in shards."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    arrays = [sd["positions_embed.weight"], sd["tokens_embed.weight"]]
    for i in range(model.config.n_layer):
        for name in ("attn.c_attn", "attn.c_proj", "ln_1", "mlp.c_fc", "mlp.c_proj", "ln_2"):
            weight = sd[f"h.{i}.{name}.weight"]
            weight = weight.T[None] if weight.ndim == 2 else weight  # Linear (out, in) -> Conv1D
            arrays += [weight, sd[f"h.{i}.{name}.bias"]]
    (folder / "params_shapes.json").write_text(json.dumps([list(a.shape) for a in arrays]))
    flat = np.concatenate([a.reshape(-1) for a in arrays]).astype(np.float32)
    for k, shard in enumerate(np.array_split(flat, 3)):
        np.save(folder / f"params_{k}.npy", shard)


def test_a_transformers_folder_with_its_tokenizer_inside_or_beside(tmp_path):
    id1_model(len(GPT1_VOCAB)).save_pretrained(tmp_path / "model")
    write_gpt1_tokenizer(tmp_path)  # beside it, as in a run's hf/ export
    model, tok = load(tmp_path / "model")
    assert tok.get_vocab() == GPT1_VOCAB and not model.training
    assert model.config.vocab_size == len(GPT1_VOCAB)


def test_openai_release_folder_loads_the_weights_and_the_bpe_beside_them(tmp_path):
    torch.manual_seed(1)
    original = GPT(GPTConfig(vocab_size=len(GPT1_VOCAB), n_ctx=8, n_embd=24, n_layer=2,
                             n_head=12)).eval()  # fmt: skip
    write_release(original, tmp_path)
    write_gpt1_tokenizer(tmp_path, ("encoder_bpe_40000.json", "vocab_40000.bpe"))
    model, tok = load(tmp_path)
    assert tok.get_vocab() == GPT1_VOCAB
    idx = torch.randint(len(GPT1_VOCAB), (2, 8))
    with torch.no_grad():
        assert torch.allclose(model(idx)[0], original(idx)[0], atol=1e-6)


def test_a_training_run_folder_gives_its_best_checkpoint_and_tokenizer(tmp_path):
    from gpt1_lib.checkpoint import load_model

    run_dir = train_tiny_run(tmp_path)

    model, tok = load(run_dir)
    assert tok.token_to_id("<eos>") == EOS_ID and not model.training
    best = load_model(run_dir)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 best.state_dict().values()))  # fmt: skip


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "neither a training run"),  # an empty folder
        (lambda p: p / "missing" / "run", "no checkpoint directory"),
        (lambda p: id1_model(16).save_pretrained(p / "m") and p / "m", "no tokenizer"),
    ],
)
def test_what_is_not_a_model_gets_one_line_that_says_what_to_do(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        load(make(tmp_path))


def test_the_tokenizer_is_found_before_the_weights_are_read(tmp_path, monkeypatch):
    """A folder with weights but no tokenizer fails before anything large is loaded."""
    id1_model(16).save_pretrained(tmp_path / "m")
    monkeypatch.setattr(GPT, "from_pretrained", lambda *a, **k: pytest.fail("loaded weights"))
    with pytest.raises(ValueError, match="no tokenizer"):
        load(tmp_path / "m")
