"""A finished fine-tuning run's `hf/` folder computes, in `transformers`, what our model does.

`save_hf` (chapter 09) writes OpenAIGPTDoubleHeadsModel (post-LN) or GPT2DoubleHeadsModel
(pre-LN) for multiple choice, …ForSequenceClassification for classification and entailment
(the head's bias folded into the last LayerNorm), and nothing for similarity. Tiny random
models: every tensor noisy, so a misplaced or untransposed one cannot hide.
"""

from __future__ import annotations

import json

import pytest
import torch
from training_helpers import story_tokenizer

from gpt1_lib.finetune import save_hf
from gpt1_lib.finetune_model import (
    SPECIAL,
    FineTuneModel,
    add_special_tokens,
    collate,
    grow_vocab,
    transform,
)
from gpt1_lib.model import GPT, GPTConfig
from gpt1_lib.tasks import Example
from gpt1_lib.tokenizer import encode

transformers = pytest.importorskip("transformers")
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

VOCAB = 300
EXAMPLES = (
    Example(0, "Once upon a time, a dog", choices=("named Max.", "ran to the park and played.")),
    Example(1, "It liked to", choices=("play", "sleep in the sun all day long, the cat said.")),
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return add_special_tokens(story_tokenizer(tmp_path_factory.mktemp("corpus"), VOCAB), VOCAB)


def tiny(kind: str, n_classes: int, pre_ln: bool, seed: int = 0) -> FineTuneModel:
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=VOCAB, n_ctx=40, n_embd=32, n_layer=2, n_head=4, pre_ln=pre_ln)
    model = FineTuneModel(grow_vocab(GPT(config), len(SPECIAL)), kind, n_classes, 0.1)
    with torch.no_grad():
        for p in model.parameters():  # the head's bias and every LayerNorm too, not just 0 and 1
            p.normal_(0, 0.1)
    return model.eval()


def batch(tokenizer, kind: str):
    """(idx, mask, last) of the EXAMPLES, padded: the choices differ in length."""
    grown, special = tokenizer
    seqs = [transform(ex, kind, lambda s: encode(grown, s), 40, special) for ex in EXAMPLES]
    return collate(seqs)


@pytest.mark.parametrize("pre_ln", [False, True], ids=["post-LN", "pre-LN"])
def test_double_heads_model_computes_our_lm_and_choice_logits(tokenizer, tmp_path, pre_ln):
    model = tiny("multiple_choice", 2, pre_ln)
    folder = tmp_path / "hf"
    assert save_hf(model, tokenizer[0], folder) == str(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no temporary folder left
    cls = transformers.GPT2DoubleHeadsModel if pre_ln else transformers.OpenAIGPTDoubleHeadsModel
    hf, info = cls.from_pretrained(folder, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or resized tensor
    assert json.loads((folder / "config.json").read_text())["summary_first_dropout"] == 0.1
    idx, mask, last = batch(tokenizer, "multiple_choice")
    B, C, T = idx.shape
    with torch.no_grad():
        out = hf.eval()(idx, mc_token_ids=last)
        ours = model(idx, mask, last).logits
        lm = model.transformer(idx.view(B * C, T))[0].view(B, C, T, -1)
    assert torch.allclose(out.mc_logits, ours, atol=1e-5), (out.mc_logits - ours).abs().max()
    assert torch.allclose(out.logits, lm, atol=1e-5), (out.logits - lm).abs().max()


@pytest.mark.parametrize("kind", ["classification", "entailment"])
@pytest.mark.parametrize("pre_ln", [False, True], ids=["post-LN", "pre-LN"])
def test_sequence_classification_model_computes_our_logits(tokenizer, tmp_path, kind, pre_ln):
    model = tiny(kind, 3, pre_ln)
    assert model.head.bias.abs().min() > 0  # the bias has to be folded, not dropped
    assert save_hf(model, tokenizer[0], tmp_path / "hf", labels=("a", "b", "c"))
    cls = (
        transformers.GPT2ForSequenceClassification
        if pre_ln
        else transformers.OpenAIGPTForSequenceClassification
    )
    hf, info = cls.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not any(info.values()), info
    assert hf.config.id2label == {0: "a", 1: "b", 2: "c"}
    examples = [Example(0, "a dog named Max", "It liked to play"), Example(1, "Lily", "the park")]
    grown, special = tokenizer
    idx, mask, last = collate(
        [transform(ex, kind, lambda s: encode(grown, s), 40, special) for ex in examples]
    )
    with torch.no_grad():
        theirs, ours = hf.eval()(idx[:, 0]).logits, model(idx, mask, last).logits
    assert torch.allclose(theirs, ours, atol=1e-5), (theirs - ours).abs().max()


def test_similarity_gets_no_folder_and_says_why(tokenizer, tmp_path, capsys):
    assert save_hf(tiny("similarity", 2, False), tokenizer[0], tmp_path / "hf") is None
    assert "two orderings" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


def test_autotokenizer_knows_the_three_new_tokens(tokenizer, tmp_path):
    grown, special = tokenizer
    save_hf(tiny("multiple_choice", 2, True), grown, tmp_path / "hf")
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = "_start_Once upon a time_delimiter_ a dog named Max._classify_"
    ids = hf(text)["input_ids"]
    assert ids == grown.encode(text).ids
    assert ids[0] == special[0] and ids[-1] == special[2] and special[1] in ids
    parts = [special[0], *encode(grown, "Once upon a time"), special[1]]
    assert ids == [*parts, *encode(grown, " a dog named Max."), special[2]]  # as `transform`


def test_saving_again_replaces_the_folder_whole(tokenizer, tmp_path):
    folder = tmp_path / "hf"
    save_hf(tiny("multiple_choice", 2, False, seed=0), tokenizer[0], folder)
    (folder / "stale.txt").write_text("from an older run")
    second = tiny("multiple_choice", 2, False, seed=1)
    save_hf(second, tokenizer[0], folder)
    assert not (folder / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]
    hf = transformers.OpenAIGPTDoubleHeadsModel.from_pretrained(folder)
    assert torch.equal(hf.multiple_choice_head.summary.bias, second.head.bias.detach())
