"""The exported folder loads whole in `transformers`, and `push_to_hub` fails in one line.

`save_for_transformers` (chapter 04) is what the GPU chapter hands the reader: a folder that
`AutoTokenizer` and `AutoModelForCausalLM` (OpenAIGPT for a post-LN model, GPT-2 for a pre-LN
one) load and generate with, no gpt1_lib needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from training_helpers import story_tokenizer

from gpt1_lib import hf_export
from gpt1_lib.hf_export import TOKENIZER_FILES, push_to_hub, save_for_transformers
from gpt1_lib.model import GPT, GPTConfig
from gpt1_lib.tokenizer import EOS_ID, PAD_ID, decode, encode

transformers = pytest.importorskip("transformers")
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

TEXTS = (
    "Once upon a time, there was a little dog named Max.",
    "  two leading spaces,\ttabs\tand\nnew lines\n\n",
    "Ünïcödé and emoji 🙂 the tokenizer never saw, and <eos> as plain text",
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return story_tokenizer(tmp_path_factory.mktemp("corpus"), 300)


@pytest.fixture(scope="module")
def exported(tokenizer, tmp_path_factory):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=320, n_ctx=48, n_embd=32, n_layer=2, n_head=4)).eval()
    with torch.no_grad():
        for p in model.parameters():  # every tensor noisy: a misplaced one cannot hide
            p.normal_(0, 0.1)
    folder = tmp_path_factory.mktemp("export") / "model"
    assert save_for_transformers(model, tokenizer, folder) == folder
    return model, folder


def test_the_folder_holds_weights_config_and_tokenizer_files_and_nothing_else(exported):
    _, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ("config.json", "model.safetensors", *TOKENIZER_FILES)
    )
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 48
    assert (config["pad_token"], config["eos_token"]) == ("<pad>", "<eos>")


def test_autotokenizer_encodes_and_decodes_exactly_as_our_tokenizer(tokenizer, exported):
    hf = transformers.AutoTokenizer.from_pretrained(exported[1])
    for text in TEXTS:
        ids = hf(text)["input_ids"]
        assert ids == encode(tokenizer, text), text
        assert hf.decode(ids) == decode(tokenizer, ids) == text
    assert (hf.pad_token_id, hf.eos_token_id) == (PAD_ID, EOS_ID)
    assert hf.model_max_length == 48


def test_transformers_computes_our_logits_and_generates_our_greedy_tokens(tokenizer, exported):
    ours, folder = exported
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    hf = transformers.OpenAIGPTLMHeadModel.from_pretrained(folder).eval()
    ids = hf_tokenizer(TEXTS[0], return_tensors="pt")["input_ids"]
    out = assert_same_logits_and_greedy_tokens(hf, ours, ids)
    assert out.shape == (1, ids.shape[1] + 10)
    assert isinstance(hf_tokenizer.decode(out[0]), str)


def assert_same_logits_and_greedy_tokens(hf, ours, ids: torch.Tensor) -> torch.Tensor:
    """`transformers` computes our logits and its `generate` picks our 10 greedy tokens."""
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, ours(ids)[0], atol=1e-5)
        out = hf.generate(ids, max_new_tokens=10, do_sample=False, pad_token_id=PAD_ID)
        greedy = ids
        for _ in range(10):
            greedy = torch.cat([greedy, ours(greedy)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, greedy)
    return out


def test_gpt1_lib_reads_the_same_folder_back(exported):
    ours, folder = exported
    back = GPT.from_pretrained(folder)
    ids = torch.randint(300, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(back(ids)[0], ours(ids)[0])


@pytest.mark.parametrize("activation", ["gelu_tanh", "gelu"])
def test_a_pre_ln_model_leaves_as_gpt2_and_generates_our_greedy_tokens(
    tokenizer, tmp_path, activation
):
    """The book's default (cpu) model is pre-LN, GPT-2's architecture: it is saved in GPT-2's
    format, which `AutoModelForCausalLM` loads as GPT2LMHeadModel, with our logits and greedy
    tokens; `GPT.from_pretrained` reads it back to the same weights."""
    torch.manual_seed(1)
    config = GPTConfig(vocab_size=320, n_ctx=48, n_embd=32, n_layer=2, n_head=4, pre_ln=True,
                       activation=activation)  # fmt: skip
    ours = GPT(config).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.1)
    folder = save_for_transformers(ours, tokenizer, tmp_path / "out")
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["GPT2LMHeadModel"]
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    assert type(hf).__name__ == "GPT2LMHeadModel"
    ids = transformers.AutoTokenizer.from_pretrained(folder)(TEXTS[0], return_tensors="pt")
    assert_same_logits_and_greedy_tokens(hf, ours, ids["input_ids"])
    back = GPT.from_pretrained(folder)
    assert back.config == config
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), ours.state_dict().values()))


def test_a_post_ln_model_with_the_exact_gelu_is_refused_before_anything_is_written(
    tokenizer, tmp_path
):
    model = GPT(GPTConfig(vocab_size=320, n_ctx=16, n_embd=32, n_layer=1, n_head=4,
                          activation="gelu"))  # fmt: skip
    with pytest.raises(ValueError, match="tanh GELU only"):
        save_for_transformers(model, tokenizer, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_tokenizer_larger_than_the_model_is_refused(tokenizer, tmp_path):
    model = GPT(GPTConfig(vocab_size=260, n_ctx=16, n_embd=32, n_layer=1, n_head=4))
    with pytest.raises(ValueError, match="tokenizer has 300 ids but the model only 260"):
        save_for_transformers(model, tokenizer, tmp_path / "out")


def one_line(capsys) -> str:
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_push_to_hub_offline_says_so_in_one_line(exported, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert push_to_hub(exported[1], "someone/gpt1-tiny") is None
    assert "unreachable (or HF_HUB_OFFLINE is set)" in one_line(capsys)


@pytest.fixture
def unreachable_endpoint(monkeypatch):
    """The hub's address pointed at a closed local port, and offline mode switched off."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")


def test_push_to_hub_when_the_hub_does_not_answer_says_so_in_one_line(
    exported, unreachable_endpoint, capsys
):
    assert push_to_hub(exported[1], "someone/gpt1-tiny") is None
    assert "unreachable" in one_line(capsys)


def test_push_to_hub_without_a_login_says_how_to_log_in(exported, monkeypatch, capsys):
    import huggingface_hub

    monkeypatch.setattr(hf_export, "hub_reachable", lambda: True)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert push_to_hub(exported[1], "someone/gpt1-tiny") is None
    assert "huggingface_hub.login()" in one_line(capsys)


def test_push_to_hub_reports_a_failed_upload_in_one_line(
    exported, unreachable_endpoint, monkeypatch, capsys
):
    import huggingface_hub

    monkeypatch.setattr(hf_export, "hub_reachable", lambda: True)  # it answered a moment ago
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_not_a_real_token")
    assert push_to_hub(exported[1], "someone/gpt1-tiny") is None
    line = one_line(capsys)
    assert "failed" in line and "the folder is kept" in line


def test_push_to_hub_refuses_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ValueError, match="save_for_transformers first"):
        push_to_hub(tmp_path, "someone/gpt1-tiny")


def test_export_leaves_no_temporary_files(exported):
    assert not [p for p in Path(exported[1]).iterdir() if p.name.endswith(".tmp")]
