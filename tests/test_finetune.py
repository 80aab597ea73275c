"""Tests of chapter 09's fine-tuning (gpt1_lib.finetune): GPT-1's §3.2-3.3 as OpenAI's released
code does it, on tiny models and hand-made tasks, so the whole file runs in seconds on a CPU.

What they pin down: the three new tokens and the grown (still tied) embedding; the input
transformations token by token; the heads, the pooling, the shared classifier dropout and the
losses against hand computations; the schedule against OpenAI's `opt.py`; `transfer`; the
config checks; that fine-tuning learns; exact resume of a run directory; the command line's
files and its one-line errors; the zero-shot helpers.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from training_helpers import (
    WORDS,
    make_corpus,
    one_thread,  # noqa: F401 (an autouse fixture)
    one_thread_env,
    tiny_config,
)

import gpt1_lib.finetune as ft
from gpt1_lib.checkpoint import CheckpointError, read_checkpoint
from gpt1_lib.config import ConfigError
from gpt1_lib.finetune_loop import finetune, finetune_config, prepare, transfer, warmup_linear
from gpt1_lib.finetune_model import (
    SPECIAL,
    FineTuneError,
    FineTuneModel,
    add_special_tokens,
    batch_rows,
    collate,
    encode_task,
    grow_vocab,
    lm_loss,
    transform,
)
from gpt1_lib.model import GPT, GPTConfig
from gpt1_lib.run_dir import read_metrics
from gpt1_lib.tasks import Example, Task
from gpt1_lib.tokenizer import encode, load_tokenizer, train_tokenizer
from gpt1_lib.train import train
from gpt1_lib.zero_shot import fit_threshold, mean_logprob, zero_shot

VOCAB = 300
START, DELIM, EXTRACT = 1000, 1001, 1002  # stand-in special ids for `transform`


def tiny_gpt(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    fields = dict(vocab_size=VOCAB, n_ctx=32, n_embd=32, n_layer=2, n_head=2, dropout=0.0)
    return GPT(GPTConfig(**{**fields, **overrides}))


def word_ids(text: str) -> list[int]:
    """A stand-in tokenizer for `transform`: "3 4 5" -> [3, 4, 5]."""
    return [int(w) for w in text.split()]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A byte-level BPE of exactly VOCAB ids, trained on a few KB of generated text."""
    corpus = make_corpus(tmp_path_factory.mktemp("tok") / "corpus.txt", n_lines=400)
    tok = train_tokenizer(corpus, VOCAB)
    assert tok.get_vocab_size() == VOCAB
    return tok


def word_task(n_train: int = 96, n_eval: int = 32, seed: int = 0, kind: str = "classification"):
    """Learnable: label 1 iff the line contains "crown" (balanced). For entailment and
    similarity the second text is a second line; for multiple choice the right choice is the
    one containing "crown"."""
    rng = random.Random(seed)
    others = [w for w in WORDS if w != "crown"]

    def line(crown: bool) -> str:
        words = [rng.choice(others) for _ in range(rng.randint(3, 6))]
        if crown:
            words.insert(rng.randrange(len(words) + 1), "crown")
        return " ".join(words)

    def example(i: int) -> Example:
        label = i % 2
        if kind == "classification":
            return Example(label, line(bool(label)))
        if kind == "multiple_choice":
            right = rng.randrange(3)
            return Example(right, line(False), choices=tuple(line(c == right) for c in range(3)))
        return Example(label, line(bool(label)), line(False))

    splits = {
        "train": [example(i) for i in range(n_train)],
        "valid": [example(i) for i in range(n_eval)],
        "test": [example(i) for i in range(n_eval)],
    }
    labels = ("1", "2", "3") if kind == "multiple_choice" else ("no crown", "crown")
    return Task("crown", kind, labels, splits, "contains the word crown")


# ---- 1. the three new tokens ----------------------------------------------------------------
def test_special_tokens_take_the_next_three_ids_of_a_copy(tokenizer):
    grown, ids = add_special_tokens(tokenizer, VOCAB)
    assert ids == [VOCAB, VOCAB + 1, VOCAB + 2]
    assert [grown.token_to_id(t) for t in SPECIAL] == ids
    assert grown.get_vocab_size() == VOCAB + 3
    assert tokenizer.get_vocab_size() == VOCAB  # the original is untouched
    assert all(tokenizer.token_to_id(t) is None for t in SPECIAL)
    text = "The king and the queen sleep."
    assert encode(grown, text) == encode(tokenizer, text)  # ordinary text encodes as before


def test_a_tokenizer_larger_than_the_model_is_refused(tokenizer):
    with pytest.raises(FineTuneError, match="300 ids but the model only 290 rows"):
        add_special_tokens(tokenizer, VOCAB - 10)


def test_a_model_with_more_rows_than_its_tokenizer_gets_fillers_before_the_new_tokens(tokenizer):
    grown, ids = add_special_tokens(tokenizer, VOCAB + 5)  # e.g. a vocab_size rounded up
    assert ids == [VOCAB + 5, VOCAB + 6, VOCAB + 7]
    assert grown.get_vocab_size() == VOCAB + 8
    assert [grown.id_to_token(VOCAB + i) for i in range(5)] == [
        f"<unused_{VOCAB + i}>" for i in range(5)
    ]


# ---- 2. the grown embedding -----------------------------------------------------------------
def test_grow_vocab_keeps_old_rows_adds_gpt1_rows_and_stays_tied():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=50, n_ctx=8, n_embd=1024, n_layer=1, n_head=2, dropout=0.0))
    old = gpt.tokens_embed.weight.detach().clone()
    grow_vocab(gpt, 3, generator=torch.Generator().manual_seed(1))
    w = gpt.tokens_embed.weight
    assert w.shape == (53, 1024) and torch.equal(w[:50], old)
    new = w[50:].detach()
    assert new.std().item() == pytest.approx(0.02, abs=0.0015)  # N(0, 0.02), 3072 draws
    assert abs(new.mean().item()) < 0.002
    assert gpt.lm_head.weight is gpt.tokens_embed.weight  # still one tensor
    assert gpt.config.vocab_size == 53
    assert gpt.tokens_embed.num_embeddings == gpt.lm_head.out_features == 53
    assert sum(p is w for p in gpt.parameters()) == 1
    logits, loss = gpt(torch.tensor([[50, 3, 51, 52]]), torch.tensor([[3, 51, 52, 50]]))
    assert logits.shape == (1, 4, 53) and torch.isfinite(loss)
    loss.backward()
    assert w.grad is not None and w.grad[50:].abs().sum() > 0  # the new rows learn


def test_grow_vocab_is_reproducible_with_a_generator():
    a, b = tiny_gpt(0), tiny_gpt(0)
    grow_vocab(a, 3, torch.Generator().manual_seed(5))
    grow_vocab(b, 3, torch.Generator().manual_seed(5))
    assert torch.equal(a.tokens_embed.weight, b.tokens_embed.weight)


# ---- 3. input transformations ---------------------------------------------------------------
SPECIALS = (START, DELIM, EXTRACT)


def test_each_kind_has_gpt1s_token_layout():
    cls = transform(Example(0, "1 2 3"), "classification", word_ids, 32, SPECIALS)
    assert cls == [[START, 1, 2, 3, EXTRACT]]
    ent = transform(Example(1, "1 2", "3 4 5"), "entailment", word_ids, 32, SPECIALS)
    assert ent == [[START, 1, 2, DELIM, 3, 4, 5, EXTRACT]]
    sim = transform(Example(1, "1 2", "3"), "similarity", word_ids, 32, SPECIALS)
    assert sim == [[START, 1, 2, DELIM, 3, EXTRACT], [START, 3, DELIM, 1, 2, EXTRACT]]
    mc = transform(Example(1, "1 2", choices=("3", "4 5", "6")), "multiple_choice", word_ids,
                   32, SPECIALS)  # fmt: skip
    assert mc == [
        [START, 1, 2, DELIM, 3, EXTRACT],
        [START, 1, 2, DELIM, 4, 5, EXTRACT],
        [START, 1, 2, DELIM, 6, EXTRACT],
    ]
    with pytest.raises(FineTuneError, match="unknown task kind"):
        transform(Example(0, "1"), "regression", word_ids, 32, SPECIALS)


def test_long_parts_keep_their_first_n_ctx_half_minus_2_tokens():
    n_ctx, max_len = 20, 20 // 2 - 2  # 8 per part, as the original's max_len
    long_a, long_b = " ".join(map(str, range(100, 130))), " ".join(map(str, range(200, 230)))
    (ent,) = transform(Example(0, long_a, long_b), "entailment", word_ids, n_ctx, SPECIALS)
    assert ent == [START, *range(100, 100 + max_len), DELIM, *range(200, 200 + max_len), EXTRACT]
    assert len(ent) <= n_ctx
    mc = transform(Example(0, long_a, choices=(long_b, "7")), "multiple_choice", word_ids, n_ctx,
                   SPECIALS)  # fmt: skip
    assert mc[0] == ent and mc[1] == [START, *range(100, 108), DELIM, 7, EXTRACT]
    (cls,) = transform(Example(0, long_a), "classification", word_ids, n_ctx, SPECIALS)
    assert cls == [START, *range(100, 100 + n_ctx - 2), EXTRACT] and len(cls) == n_ctx


@pytest.mark.parametrize(
    "example, kind, part",
    [
        (Example(0, " ".join(["1"] * 40)), "classification", "a text"),
        (Example(0, " ".join(["1"] * 9), "2"), "entailment", "a premise"),
        (Example(0, "2", " ".join(["1"] * 9)), "entailment", "a hypothesis"),
        (Example(0, " ".join(["1"] * 9), choices=("2", "3")), "multiple_choice", "a context"),
        (Example(0, "2", choices=("3", " ".join(["1"] * 9))), "multiple_choice", "a choice"),
    ],
)
def test_without_truncation_a_long_part_is_an_error_naming_it(example, kind, part):
    n_ctx = 20 if kind != "classification" else 32
    with pytest.raises(FineTuneError, match=f"^{part} has") as err:
        transform(example, kind, word_ids, n_ctx, SPECIALS, truncate=False)
    assert "truncate" in str(err.value)
    transform(example, kind, word_ids, n_ctx, SPECIALS, truncate=True)  # fine when cut


def test_encode_task_says_which_example_is_too_long(tokenizer):
    grown, special = add_special_tokens(tokenizer, VOCAB)
    task = word_task(4, 2)
    task.splits["valid"][1] = Example(0, "the king " * 40)
    with pytest.raises(FineTuneError, match="crown valid example 2: a text has"):
        encode_task(task, grown, 32, special, truncate=False)
    data = encode_task(task, grown, 32, special)
    assert set(data) == {"train", "valid", "test"}
    assert data["valid"].labels.tolist() == [ex.label for ex in task.splits["valid"]]
    assert all(len(s[0]) <= 32 for s in data["valid"].seqs)


# ---- 4. collate -----------------------------------------------------------------------------
def test_collate_pads_masks_and_points_at_the_extract_token():
    seqs = [[[5, 6, 7, 9], [5, 9]], [[5, 6, 9], [5, 6, 7, 8, 9]]]
    idx, mask, last = collate(seqs, pad_id=0)
    assert idx.shape == mask.shape == (2, 2, 5) and last.shape == (2, 2)
    assert idx[1, 1].tolist() == [5, 6, 7, 8, 9] and idx[0, 1].tolist() == [5, 9, 0, 0, 0]
    assert mask[0].tolist() == [[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]]
    assert last.tolist() == [[3, 1], [2, 4]]
    assert (idx.gather(-1, last[..., None]) == 9).all()  # every `last` is the extract token
    with pytest.raises(FineTuneError, match="as many choices"):
        collate([[[1, 2]], [[1, 2], [3, 4]]])


# ---- 5. the model: heads, pooling, dropout, losses ------------------------------------------
def ft_model(kind: str, n_classes: int, clf_dropout: float = 0.0, **gpt_overrides):
    gpt = tiny_gpt(0, **gpt_overrides)
    grow_vocab(gpt, 3)
    torch.manual_seed(1)
    return FineTuneModel(gpt, kind, n_classes, clf_dropout)


def extract_state(model: FineTuneModel, seq: list[int]) -> torch.Tensor:
    """The final hidden state at the extract token of one sequence, computed alone."""
    return model.hidden(torch.tensor([seq]))[0, -1]


def test_multiple_choice_scores_each_choice_with_one_output():
    model = ft_model("multiple_choice", 3).eval()
    assert model.head.out_features == 1
    assert model.head.bias.abs().sum() == 0  # GPT-1's init: bias 0
    seqs = [[[VOCAB, 5, 6, VOCAB + 1, 7, VOCAB + 2], [VOCAB, 5, 6, VOCAB + 1, 8, 9, VOCAB + 2],
             [VOCAB, 5, 6, VOCAB + 1, 10, VOCAB + 2]],
            [[VOCAB, 11, VOCAB + 1, 12, VOCAB + 2], [VOCAB, 11, VOCAB + 1, 13, VOCAB + 2],
             [VOCAB, 11, VOCAB + 1, 14, 15, 16, VOCAB + 2]]]  # fmt: skip
    with torch.no_grad():
        out = model(*collate(seqs))
        assert out.logits.shape == (2, 3) and out.loss is None
        by_hand = torch.tensor(
            [[model.head(extract_state(model, s)).item() for s in ex] for ex in seqs]
        )
    torch.testing.assert_close(out.logits, by_hand, atol=1e-5, rtol=1e-5)


def test_similarity_adds_both_orderings_before_the_head():
    model = ft_model("similarity", 2).eval()
    assert model.head.out_features == 2
    a, b = [5, 6, 7], [8, 9]
    (ab, ba) = transform(Example(0, "5 6 7", "8 9"), "similarity", word_ids, 32,
                         (VOCAB, VOCAB + 1, VOCAB + 2))  # fmt: skip
    assert ab[1:4] == a and ba[1:3] == b
    with torch.no_grad():
        logits = model(*collate([[ab, ba]])).logits
        by_hand = model.head(extract_state(model, ab) + extract_state(model, ba))
        swapped = model(*collate([[ba, ab]])).logits
    assert logits.shape == (1, 2)
    torch.testing.assert_close(logits[0], by_hand, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(swapped, logits)  # no order: symmetric in its two texts


def test_classification_logits_are_the_head_on_the_extract_state():
    model = ft_model("classification", 4).eval()
    seq = [VOCAB, 5, 6, 7, VOCAB + 2]
    with torch.no_grad():
        logits = model(*collate([[seq]])).logits
        by_hand = model.head(extract_state(model, seq))
    assert logits.shape == (1, 4)
    torch.testing.assert_close(logits[0], by_hand, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind, n", [("classification", 2), ("multiple_choice", 2)])
def test_padding_changes_no_logit(kind, n):
    model = ft_model(kind, n, clf_dropout=0.1, dropout=0.1).eval()
    n_seqs = 1 if kind == "classification" else n
    short = [[VOCAB, 5, VOCAB + 2], [VOCAB, 6, 7, VOCAB + 2]][:n_seqs]
    long = [[VOCAB, *range(10, 30), VOCAB + 2]] * len(short)
    with torch.no_grad():
        alone = model(*collate([short])).logits
        padded = model(*collate([short, long])).logits
    torch.testing.assert_close(padded[:1], alone, atol=1e-5, rtol=1e-5)


def test_classifier_dropout_mask_is_shared_by_an_examples_choices():
    model = ft_model("multiple_choice", 4, clf_dropout=0.5).train()  # GPT dropout 0
    seen = []
    model.head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    seqs = [[[VOCAB, 5 + b, c + 20, VOCAB + 2] for c in range(4)] for b in range(3)]
    idx, mask, last = collate(seqs)
    torch.manual_seed(0)
    model(idx, mask, last)
    pooled = seen[0]  # (B, C, n_embd) after the classifier dropout
    assert pooled.shape == (3, 4, 32)
    zero = pooled == 0
    assert zero.any() and not zero.all()  # the dropout did act
    assert (zero == zero[:, :1]).all()  # the same dims dropped in every choice of an example
    assert not (zero[0] == zero[1]).all()  # but a fresh mask per example
    with torch.no_grad():  # and the kept dims are scaled by 1 / (1 - p)
        h = model.hidden(idx.view(12, -1))[torch.arange(12), last.view(-1)].view(3, 4, -1)
    torch.testing.assert_close(pooled[~zero], (h * 2)[~zero], atol=1e-5, rtol=1e-5)


def test_no_classifier_dropout_in_eval_mode():
    model = ft_model("classification", 2, clf_dropout=0.9).eval()
    batch = collate([[[VOCAB, 5, VOCAB + 2]]])
    torch.manual_seed(0)
    a = model(*batch).logits
    torch.manual_seed(1)
    torch.testing.assert_close(model(*batch).logits, a, atol=0, rtol=0)


def test_lm_loss_is_a_mean_per_sequence_then_over_sequences():
    model = ft_model("multiple_choice", 2).eval()
    seqs = [[[VOCAB, 5, 6, VOCAB + 1, 7, VOCAB + 2], [VOCAB, 5, 6, VOCAB + 1, 8, 9, 10, 11, VOCAB + 2]],
            [[VOCAB, 12, VOCAB + 1, 13, VOCAB + 2], [VOCAB, 12, VOCAB + 1, 14, VOCAB + 2]]]  # fmt: skip
    idx, mask, last = collate(seqs)
    labels = torch.tensor([1, 0])
    with torch.no_grad():
        out = model(idx, mask, last, labels, lm_coef=0.3)
        per_seq = []
        for ex in seqs:
            for s in ex:  # each sequence alone: no padding at all
                logits = model.transformer.lm_head(model.hidden(torch.tensor([s])))[0]
                per_seq.append(F.cross_entropy(logits[:-1], torch.tensor(s[1:])))
        by_hand = torch.stack(per_seq).mean()
    # a mean over all real tokens at once would weight the long choice more: not GPT-1's
    assert not torch.isclose(by_hand, torch.stack(per_seq).repeat_interleave(
        torch.tensor([len(s) - 1 for ex in seqs for s in ex])).mean())  # fmt: skip
    torch.testing.assert_close(out.lm_loss, by_hand, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.clf_loss, F.cross_entropy(out.logits, labels))
    torch.testing.assert_close(out.loss, out.clf_loss + 0.3 * out.lm_loss)
    logits = model.transformer.lm_head(model.hidden(idx.view(4, -1))).detach()
    torch.testing.assert_close(lm_loss(logits, idx.view(4, -1), mask.view(4, -1)), by_hand,
                               atol=1e-5, rtol=1e-5)  # fmt: skip


def test_lm_coef_zero_turns_the_lm_term_off():
    model = ft_model("classification", 2).eval()
    batch = collate([[[VOCAB, 5, 6, VOCAB + 2]], [[VOCAB, 7, VOCAB + 2]]])
    out = model(*batch, torch.tensor([0, 1]), lm_coef=0)
    assert out.lm_loss is None and torch.equal(out.loss, out.clf_loss)
    half = model(*batch, torch.tensor([0, 1]), lm_coef=0.5)
    torch.testing.assert_close(half.loss, half.clf_loss + 0.5 * half.lm_loss)


def test_an_unknown_kind_is_refused():
    with pytest.raises(FineTuneError, match="unknown task kind 'regression'"):
        FineTuneModel(tiny_gpt(), "regression", 2)


# ---- 6. schedule and transfer ---------------------------------------------------------------
def openai_warmup_linear(x: float, warmup: float) -> float:
    """opt.py of openai/finetune-transformer-lm: (s*(x/warmup) + (1-s))*(1-x), s = x <= warmup."""
    s = float(x <= warmup)
    return (s * (x / warmup) + (1 - s)) * (1 - x)


@pytest.mark.parametrize(
    "step, total, warmup",
    [(1, 1000, 0.002), (2, 1000, 0.002), (3, 1000, 0.002), (500, 1000, 0.002), (1000, 1000, 0.002),
     (1, 10, 0.2), (2, 10, 0.2), (5, 10, 0.2), (10, 10, 0.2)],
)  # fmt: skip
def test_warmup_linear_is_openais_formula(step, total, warmup):
    assert warmup_linear(step, total, warmup) == pytest.approx(
        openai_warmup_linear(step / total, warmup), abs=1e-12
    )


def perturbed_gpt(**overrides) -> GPT:
    """A 'pre-trained' model: every tensor moved off its initial values (LayerNorms too)."""
    gpt = tiny_gpt(0, n_layer=3, **overrides)
    with torch.no_grad():
        for p in gpt.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return gpt


@pytest.mark.parametrize("pre_ln", [False, True])
def test_transfer_k_keeps_embeddings_and_first_k_blocks(pre_ln):
    gpt = perturbed_gpt(pre_ln=pre_ln)
    before = {k: v.clone() for k, v in gpt.state_dict().items()}
    torch.manual_seed(3)
    after = transfer(gpt, 1).state_dict()
    for name, value in after.items():
        kept = name.startswith(("tokens_embed", "positions_embed", "lm_head", "h.0."))
        assert torch.equal(value, before[name]) == kept, name
    assert gpt.lm_head.weight is gpt.tokens_embed.weight


def test_transfer_minus_one_changes_everything_and_none_or_all_nothing():
    gpt = perturbed_gpt(pre_ln=True)
    before = {k: v.clone() for k, v in gpt.state_dict().items()}
    for layers in (None, 3):
        assert all(torch.equal(v, before[k]) for k, v in transfer(gpt, layers).state_dict().items())
    after = transfer(gpt, -1).state_dict()
    assert all(not torch.equal(v, before[k]) for k, v in after.items())
    gpt = perturbed_gpt()
    emb = gpt.tokens_embed.weight.detach().clone()
    transfer(gpt, 0)  # only the embeddings
    assert torch.equal(gpt.tokens_embed.weight, emb)


@pytest.mark.parametrize("layers", [4, 12, -2])
def test_transfer_outside_the_depth_is_a_config_error(layers):
    with pytest.raises(ConfigError, match=f"transfer_layers={layers} is outside -1..3"):
        transfer(perturbed_gpt(), layers)


def test_batches_are_reproducible_fresh_per_epoch_and_drop_the_partial_one():
    a = batch_rows(10, 3, seed=1, epoch=0)
    assert len(a) == 3 and all(len(r) == 3 for r in a)
    assert len(set(torch.cat(a).tolist())) == 9  # no row twice in an epoch
    assert all(torch.equal(x, y) for x, y in zip(a, batch_rows(10, 3, seed=1, epoch=0)))
    assert not torch.equal(torch.cat(a), torch.cat(batch_rows(10, 3, seed=1, epoch=1)))


# ---- 7. the config --------------------------------------------------------------------------
def test_defaults_are_gpt1s_recipe():
    cfg = finetune_config()
    assert cfg["lr"] == 6.25e-5 and cfg["batch_size"] == 32 and cfg["epochs"] == 3
    assert cfg["warmup"] == 0.002 and cfg["lm_coef"] == 0.5 and cfg["clf_dropout"] == 0.1
    assert cfg["weight_decay"] == 0.01 and cfg["grad_clip"] == 1.0 and cfg["dropout"] == 0.1
    cfg = finetune_config(["lm_coef=0", "transfer_layers=-1", "epochs=5", "lr=0.001"])
    assert (cfg["lm_coef"], cfg["transfer_layers"], cfg["epochs"], cfg["lr"]) == (0, -1, 5, 1e-3)


def test_lr_in_exponent_notation_is_a_number():
    """`--set lr=1e-4` is how people write a learning rate; YAML 1.1 reads "1e-4" as a string."""
    cfg = finetune_config(["lr=1e-4", "weight_decay=1e-2"])
    assert isinstance(cfg["lr"], float) and cfg["lr"] == pytest.approx(1e-4)
    assert isinstance(cfg["weight_decay"], float) and cfg["weight_decay"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"learning_rate": 1e-4}, "unknown fine-tuning key 'learning_rate'"),
        ({"lm_coef": -1}, "lm_coef"),
        ({"lm_coef": "a lot"}, "lm_coef"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"epochs": 2.5}, "epochs must be a positive integer"),
        ({"ckpt_interval": "often"}, "ckpt_interval"),
        ({"lr": 2}, "lr must be a number in"),
        ({"warmup": -0.1}, "warmup"),
        ({"transfer_layers": 1.5}, "transfer_layers must be an integer >= -1"),
        ({"transfer_layers": "all"}, "transfer_layers"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        finetune_config(overrides)


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"lr": "fast"}, "lr"),
        ({"lr": None}, "lr"),
        ({"dropout": 1.5}, "dropout"),
        ({"clf_dropout": -0.1}, "clf_dropout"),
        ({"weight_decay": "some"}, "weight_decay"),
        ({"grad_clip": "yes"}, "grad_clip"),
        ({"eval_interval": -1}, "eval_interval"),
        ({"seed": "x"}, "seed"),
        ({"truncate": "maybe"}, "truncate"),
    ],
)
def test_every_setting_is_checked_not_only_some(overrides, key):
    """Unchecked values fail later as a bare ValueError/TypeError (a traceback on the command
    line) or silently ("maybe" is truthy): they must be ConfigErrors naming the key."""
    with pytest.raises(ConfigError, match=key):
        finetune_config(overrides)


# ---- preparing a model ----------------------------------------------------------------------
def test_prepare_copies_the_pretrained_model_and_checks_labels(tokenizer):
    gpt = tiny_gpt(0, dropout=0.1)
    before = {k: v.clone() for k, v in gpt.state_dict().items()}
    cfg = finetune_config(
        {"dropout": 0.0, "clf_dropout": 0.2, "transfer_layers": 1, "batch_size": 4}
    )
    model, data, grown = prepare(gpt, tokenizer, word_task(8, 4), cfg)
    assert all(torch.equal(v, gpt.state_dict()[k]) for k, v in before.items())
    assert gpt.config.vocab_size == VOCAB and gpt.config.dropout == 0.1
    assert model.transformer.config.vocab_size == VOCAB + 3
    assert model.transformer.config.dropout == 0.0 and model.clf_dropout == 0.2
    assert grown.token_to_id("_classify_") == VOCAB + 2
    assert torch.equal(model.transformer.h[0].attn.c_attn.weight, gpt.h[0].attn.c_attn.weight)
    assert not torch.equal(model.transformer.h[1].attn.c_attn.weight, gpt.h[1].attn.c_attn.weight)
    seq = data["train"].seqs[0][0]
    assert seq[0] == VOCAB and seq[-1] == VOCAB + 2
    again, _, _ = prepare(gpt, tokenizer, word_task(8, 4), cfg)  # the seed fixes the new rows
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    bad = word_task(8, 4)
    bad.splits["test"][0] = Example(2, "the king")
    with pytest.raises(FineTuneError, match="crown test: labels must be 0..1"):
        prepare(gpt, tokenizer, bad, cfg)


# ---- 8. fine-tuning learns ------------------------------------------------------------------
def test_finetuning_learns_a_learnable_task(tokenizer):
    task = word_task(128, 64)
    cfg = finetune_config({"lr": 3e-3, "batch_size": 8, "epochs": 6, "warmup": 0.05,
                           "dropout": 0.0, "clf_dropout": 0.0, "device": "cpu"})  # fmt: skip
    model, data, _ = prepare(tiny_gpt(0), tokenizer, task, cfg)
    summary = finetune(model, data, cfg, progress=False)
    assert summary["steps"] == summary["total_steps"] == 128 // 8 * 6
    assert summary["test_accuracy"] >= 0.8, summary  # chance is 0.5
    assert summary["best_valid_accuracy"] >= 0.8


def test_a_train_split_smaller_than_a_batch_is_an_error(tokenizer):
    cfg = finetune_config({"batch_size": 16, "device": "cpu"})
    with pytest.raises(FineTuneError, match="lower batch_size"):  # before anything is written
        prepare(tiny_gpt(0), tokenizer, word_task(8, 4), cfg)
    model, data, _ = prepare(
        tiny_gpt(0), tokenizer, word_task(8, 4), finetune_config({"batch_size": 8})
    )
    with pytest.raises(FineTuneError, match="lower batch_size"):
        finetune(model, data, cfg, progress=False)


# ---- 9. the run directory and exact resume --------------------------------------------------
RESUME_CFG = {"lr": 2e-3, "batch_size": 4, "epochs": 3, "warmup": 0.1, "dropout": 0.1,
              "clf_dropout": 0.1, "eval_interval": 3, "ckpt_interval": 4, "device": "cpu"}  # fmt: skip


def fresh(tokenizer, cfg):
    return prepare(tiny_gpt(0), tokenizer, word_task(24, 8, kind="multiple_choice"), cfg)


def test_a_run_directory_resumes_exactly(tokenizer, tmp_path):
    cfg = finetune_config(RESUME_CFG)
    model_a, data, _ = fresh(tokenizer, cfg)
    done = finetune(model_a, data, cfg, tmp_path / "A", progress=False)
    assert done["steps"] == 18 and "test_accuracy" in done
    assert len(done["test_correct"]) == len(data["test"])  # example by example, to pair runs
    assert done["test_correct"].count("1") / len(data["test"]) == pytest.approx(done["test_accuracy"])
    assert {"ckpt_last.pt", "ckpt_best.pt", "metrics.jsonl"} <= {
        p.name for p in (tmp_path / "A").iterdir()
    }
    model_b, data, _ = fresh(tokenizer, cfg)
    part = finetune(model_b, data, cfg, tmp_path / "B", until=7, progress=False)
    assert part["steps"] == 7 and "test_accuracy" not in part
    model_b, data, _ = fresh(tokenizer, cfg)  # as a new process would
    resumed = finetune(model_b, data, cfg, tmp_path / "B", resume=True, progress=False)
    a, b = model_a.state_dict(), model_b.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = read_metrics(tmp_path / "A"), read_metrics(tmp_path / "B")
    assert [r["step"] for r in ra] == list(range(1, 19))
    assert ra == rb  # no timing field in the records
    assert sum("valid_accuracy" in r for r in ra) == 6  # every eval_interval=3 updates
    assert all("lm_loss" in r for r in ra)
    assert resumed["test_accuracy"] == done["test_accuracy"]
    last_a = torch.load(tmp_path / "A" / "ckpt_last.pt", weights_only=True)["model"]
    last_b = torch.load(tmp_path / "B" / "ckpt_last.pt", weights_only=True)["model"]
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)
    best = torch.load(tmp_path / "A" / "ckpt_best.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], best[k]) for k in a)  # the test uses the best weights
    lrs = [r["lr"] for r in ra]  # warmup, then a linear decay towards 0
    assert max(lrs) <= cfg["lr"] and lrs[-1] < cfg["lr"] / 10
    assert all(x >= y for x, y in zip(lrs[2:], lrs[3:]))
    assert resumed["best_valid_accuracy"] == done["best_valid_accuracy"]


def test_a_run_directory_is_never_overwritten_nor_resumed_with_other_settings(tokenizer, tmp_path):
    cfg = finetune_config(RESUME_CFG)
    model, data, _ = fresh(tokenizer, cfg)
    finetune(model, data, cfg, tmp_path, until=5, progress=False)
    records = (tmp_path / "metrics.jsonl").read_text()
    last = (tmp_path / "ckpt_last.pt").read_bytes()
    model, data, _ = fresh(tokenizer, cfg)
    with pytest.raises(CheckpointError, match="already holds a training run"):
        finetune(model, data, cfg, tmp_path, progress=False)
    other = finetune_config({**RESUME_CFG, "lr": 1e-3})
    with pytest.raises(ConfigError, match="lr is 0.002 there but 0.001 now"):
        finetune(model, data, other, tmp_path, resume=True, progress=False)
    assert (tmp_path / "metrics.jsonl").read_text() == records
    assert (tmp_path / "ckpt_last.pt").read_bytes() == last
    # the settings that change nothing computed may differ
    model, data, _ = fresh(tokenizer, cfg)
    looser = finetune_config({**RESUME_CFG, "ckpt_interval": 50})
    assert finetune(model, data, looser, tmp_path, resume=True, progress=False)["steps"] == 18


# ---- 10. the command line -------------------------------------------------------------------
@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny pre-training run directory (gpt1_lib.train), the language model to fine-tune."""
    root = tmp_path_factory.mktemp("pretrain")
    corpus = make_corpus(root / "corpus.txt", n_lines=600)
    config = tiny_config(corpus, max_steps=6, eval_interval=3, ckpt_interval=3)
    train(config, root / "run", progress=False, work_dir=root / "work")
    return root / "run"


@pytest.fixture(scope="module")
def task_file(tmp_path_factory) -> Path:
    task = word_task(16, 4)
    path = tmp_path_factory.mktemp("task") / "crown.jsonl"
    with path.open("w") as f:
        for split, examples in task.splits.items():
            for ex in examples:
                f.write(json.dumps({"text": ex.text, "label": ex.label, "split": split}) + "\n")
    return path


@pytest.fixture
def no_hf(monkeypatch):
    """`run` ends with save_hf (another module's); stub it only where it does not exist yet."""
    if not hasattr(ft, "save_hf"):
        monkeypatch.setattr(ft, "save_hf", lambda model, tok, path: str(path), raising=False)


FAST = ["--set", "batch_size=4", "--set", "epochs=2", "--set", "device=cpu", "--set",
        "ckpt_interval=3", "--no-progress"]  # fmt: skip


def cli(capsys, checkpoint, task, out_dir, *args) -> tuple[int, str, str]:
    status = ft.main(["--checkpoint", str(checkpoint), "--task", str(task), "--out-dir",
                      str(out_dir), *FAST, *map(str, args)])  # fmt: skip
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err.strip()


def test_cli_fine_tunes_a_pretraining_run_into_its_directory(
    capsys, pretrained, task_file, tmp_path, no_hf
):
    status, out, err = cli(capsys, pretrained, task_file, tmp_path / "ft")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["task"] == "crown" and summary["kind"] == "classification"
    assert summary["steps"] == summary["total_steps"] == 8 and "test_accuracy" in summary
    assert summary["note"].startswith("test_accuracy is one run, one seed")  # not a result to quote alone
    assert summary["test_examples"] == len(ft.resolve_task(task_file).splits["test"])
    files = {p.name for p in (tmp_path / "ft").iterdir()}
    assert {"ckpt_last.pt", "ckpt_best.pt", "metrics.jsonl", "tokenizer.json",
            "config.yaml", "hf"} <= files  # fmt: skip
    records = read_metrics(tmp_path / "ft")
    assert [r["step"] for r in records] == list(range(1, 9))
    assert [r["step"] for r in records if "valid_accuracy" in r] == [4, 8]
    tok = load_tokenizer(tmp_path / "ft" / "tokenizer.json")
    vocab = load_tokenizer(pretrained / "tokenizer.json").get_vocab_size()
    assert [tok.token_to_id(t) for t in SPECIAL] == [vocab, vocab + 1, vocab + 2]
    saved = yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())
    assert saved["batch_size"] == 4 and saved["task"] == "crown"

    status, _, err = cli(capsys, pretrained, task_file, tmp_path / "B", "--until", 3)
    assert status == 0, err
    status, _, err = cli(capsys, pretrained, task_file, tmp_path / "B", "--resume")
    assert status == 0, err
    a = torch.load(tmp_path / "ft" / "ckpt_last.pt", weights_only=True)
    b = torch.load(tmp_path / "B" / "ckpt_last.pt", weights_only=True)
    assert a["step"] == b["step"] == 8
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert read_metrics(tmp_path / "B") == records


def test_cli_user_errors_are_one_line(capsys, pretrained, task_file, tmp_path, monkeypatch, no_hf):
    (tmp_path / "empty").mkdir()
    status, _, err = cli(capsys, pretrained, task_file, tmp_path / "done")
    assert status == 0, err
    mc = tmp_path / "mc.jsonl"
    mc.write_text(json.dumps({"context": "the king", "choices": ["a", "b"], "label": 2}) + "\n")
    corpus = make_corpus(tmp_path / "plays.txt", n_lines=50)
    monkeypatch.setattr(ft, "fetch", lambda name, *a, **k: corpus)  # no data mirror needed
    cases = [
        ((tmp_path / "done", task_file, tmp_path / "o1"), "not a language model"),
        ((tmp_path / "empty", task_file, tmp_path / "o2"), "not a language model"),
        ((pretrained, task_file, tmp_path / "o3", "--set", "lm_coef=-1"), "lm_coef"),
        ((pretrained, task_file, tmp_path / "o4", "--set", "transfer_layers=3"),
         "transfer_layers=3 is outside -1..2"),
        ((pretrained, mc, tmp_path / "o5"), "label 2 is not the index"),
        ((pretrained, "no_such_task", tmp_path / "o6"), "unknown task 'no_such_task'"),
        ((pretrained, task_file, tmp_path / "done"), "already holds a training run"),
        ((pretrained, task_file, tmp_path / "o7", "--set", "bach_size=4"), "unknown fine-tuning key"),
    ]  # fmt: skip
    for args, message in cases:
        status, _, err = cli(capsys, *args)
        assert status == 1, (args, err)
        assert err.startswith("error: ") and message in err and "\n" not in err, (args, err)


def test_cli_bad_dropout_is_one_line_not_a_traceback(capsys, pretrained, task_file, tmp_path):
    status, _, err = cli(capsys, pretrained, task_file, tmp_path / "o", "--set", "dropout=1.5")
    assert status == 1 and err.startswith("error: ") and "dropout" in err and "\n" not in err


def test_cli_takes_a_learning_rate_in_exponent_notation(
    capsys, pretrained, task_file, tmp_path, no_hf
):
    status, _, err = cli(capsys, pretrained, task_file, tmp_path / "o", "--set", "lr=1e-4")
    assert status == 0, err


def test_cli_refused_run_leaves_the_directory_as_it_was(
    capsys, pretrained, task_file, tmp_path, no_hf
):
    out = tmp_path / "ft"
    assert cli(capsys, pretrained, task_file, out, "--until", 2)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    status, _, err = cli(capsys, pretrained, task_file, out, "--set", "lr=0.01", "--resume")
    assert status == 1 and "lr is 6.25e-05 there but 0.01 now" in err
    status, _, err = cli(capsys, pretrained, task_file, out, "--set", "lr=0.01")
    assert status == 1 and "already holds" in err
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    changed = sorted(k for k in before if before[k] != after.get(k))
    assert not changed, f"a refused run rewrote {changed}"  # config.yaml must still say lr


# ---- 11. zero-shot helpers ------------------------------------------------------------------
def test_fit_threshold_separates_in_either_direction():
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.9, 0.7])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    cut, above = fit_threshold(scores, labels)
    assert above and 0.4 < cut < 0.7
    assert (((scores > cut) == above).long() == labels).all()
    cut, above = fit_threshold(scores, 1 - labels)  # class 1 below the cut
    assert not above and 0.4 < cut < 0.7
    assert (((scores > cut) == above).long() == 1 - labels).all()
    cut, above = fit_threshold(scores, torch.zeros(6, dtype=torch.long))  # all one class
    assert (((scores > cut) == above).long() == 0).all()


def test_mean_logprob_is_the_mean_log_probability_of_the_text_after_its_prefix(tokenizer):
    gpt = tiny_gpt(2, dropout=0.1).train()
    prefixes, texts = ["The king sleeps.\n", "Day"], ["Sweet lady, come!", "Night and love"]
    scores = mean_logprob(gpt, tokenizer, prefixes, texts)
    assert gpt.training  # given back in the mode it came
    for score, prefix, text in zip(scores, prefixes, texts):
        p, t = encode(tokenizer, prefix), encode(tokenizer, text)
        gpt.eval()
        with torch.no_grad():
            logp = gpt(torch.tensor([p + t]))[0][0].log_softmax(-1)
        by_hand = sum(logp[len(p) + i - 1, tok] for i, tok in enumerate(t)) / len(t)
        assert score.item() == pytest.approx(by_hand.item(), abs=1e-5)


def test_mean_logprob_drops_the_prefixs_first_tokens_when_too_long(tokenizer):
    gpt = tiny_gpt(2)
    text, long_prefix = "Sweet lady.", "the king and the queen " * 20
    p, t = encode(tokenizer, long_prefix), encode(tokenizer, text)
    assert len(p) + len(t) > 32
    (score,) = mean_logprob(gpt, tokenizer, [long_prefix], [text])
    with torch.no_grad():
        logp = gpt(torch.tensor([(p + t)[-32:]]))[0][0].log_softmax(-1)
    by_hand = sum(logp[32 - len(t) + i - 1, tok] for i, tok in enumerate(t)) / len(t)
    assert score.item() == pytest.approx(by_hand.item(), abs=1e-5)


@pytest.mark.parametrize("kind", ["classification", "entailment", "multiple_choice"])
def test_zero_shot_gives_an_accuracy(tokenizer, kind):
    task = word_task(8, 6, kind=kind)
    acc = zero_shot(tiny_gpt(0), tokenizer, task, "test")
    assert 0.0 <= acc <= 1.0
    if kind == "classification":  # the threshold fits the train split; on it, at least chance
        assert zero_shot(tiny_gpt(0), tokenizer, task, "train") >= 0.5


def test_a_task_without_valid_or_test_examples_is_refused_before_training(tokenizer):
    task = word_task(8, 4)
    empty = Task(task.name, task.kind, task.labels, {**task.splits, "valid": []}, task.description)
    with pytest.raises(FineTuneError, match="needs examples in its valid and test splits"):
        prepare(tiny_gpt(0), tokenizer, empty, finetune_config({"batch_size": 4}))


def test_a_resume_takes_the_runs_own_settings_and_refuses_other_ones(
    capsys, pretrained, task_file, tmp_path, no_hf
):
    """As `python -m gpt1_lib.train --resume` starts from the run's config.yaml, a fine-tuning
    resume starts from it too: no --set to repeat; a --set that changes what
    was computed is still refused."""
    out = tmp_path / "ft"
    assert cli(capsys, pretrained, task_file, out, "--set", "lr=6.25e-4", "--until", 2)[0] == 0
    status, _, err = ft.main(["--checkpoint", str(pretrained), "--task", str(task_file),
                              "--out-dir", str(out), "--resume", "--until", "3", "--no-progress"]), *capsys.readouterr()  # fmt: skip
    assert status == 0, err
    assert read_checkpoint(out / "ckpt_last.pt")["config"]["lr"] == 6.25e-4
    status, _, err = cli(capsys, pretrained, task_file, out, "--set", "lr=1e-3", "--resume")
    assert status == 1 and "lr is 0.000625 there but 0.001 now" in err


# ---- 12. fine-tuning is the training loop: DDP as pre-training has it ----------------------
def test_two_gloo_processes_fine_tune_like_one_with_the_same_accumulation(
    capsys, pretrained, task_file, tmp_path
):
    """`FineTuner` is chapter 06's loop, so `torchrun` splits an update's micro-batches among
    processes as pre-training does: two processes with grad_accum=2 fine-tune like one process
    with grad_accum=2 (no dropout: each process draws its own masks), to within float rounding."""
    same = ["--set", "batch_size=2", "--set", "grad_accum=2", "--set", "epochs=2", "--set",
            "dropout=0", "--set", "clf_dropout=0", "--set", "lr=3e-3", "--set", "device=cpu",
            "--no-progress"]  # fmt: skip
    args = ["--checkpoint", str(pretrained), "--task", str(task_file)]
    assert ft.main([*args, "--out-dir", str(tmp_path / "one"), *same]) == 0, capsys.readouterr()
    capsys.readouterr()
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "gpt1_lib.finetune", *args, "--out-dir", str(tmp_path / "two"), *same],
        env=one_thread_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])  # printed once, by rank 0
    assert summary["steps"] == summary["total_steps"] == 16 // 4 * 2
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 9))
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=2e-6), a["step"]
        assert b.get("valid_accuracy") == a.get("valid_accuracy"), a["step"]
    assert one[-1]["loss"] < one[0]["loss"]  # it did train
    weights = [read_checkpoint(tmp_path / d / "ckpt_last.pt")["model"] for d in ("one", "two")]
    assert all(torch.allclose(weights[0][k], weights[1][k], atol=1e-5) for k in weights[0])
    assert (tmp_path / "two" / "hf" / "config.json").is_file()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_fine_tuning_runs_in_16_bits_as_pre_training_does(tokenizer, tmp_path, dtype):
    """Mixed precision is the loop's: autocast around the loss, and in float16 a GradScaler
    whose scale and skipped updates reach metrics.jsonl and the checkpoint."""
    cfg = finetune_config({"lr": 3e-3, "batch_size": 8, "epochs": 2, "dropout": 0.0,
                           "clf_dropout": 0.0, "device": "cpu", "dtype": dtype})  # fmt: skip
    model, data, _ = prepare(tiny_gpt(0), tokenizer, word_task(64, 16), cfg)
    summary = finetune(model, data, cfg, tmp_path, progress=False)
    records = read_metrics(tmp_path)
    assert summary["steps"] == 16 and "test_accuracy" in summary
    assert all(math.isfinite(r["loss"]) for r in records)
    assert records[-1]["loss"] < records[0]["loss"]
    scaler = read_checkpoint(tmp_path / "ckpt_last.pt")["scaler"]
    assert ("loss_scale" in records[-1]) == (scaler is not None) == (dtype == "float16")


# ---- a search of settings: no test read, every validation accuracy kept ---------------------
def test_a_run_without_a_test_split_never_reads_test_and_keeps_the_best_weights(tokenizer):
    cfg = finetune_config(RESUME_CFG)
    model, data, _ = fresh(tokenizer, cfg)
    searched = finetune(model, {k: v for k, v in data.items() if k != "test"}, cfg, progress=False)
    assert searched["steps"] == 18 and "test_accuracy" not in searched
    model_t, data_t, _ = fresh(tokenizer, cfg)
    tested = finetune(model_t, data_t, cfg, progress=False)  # the same run, scored on test
    a, b = model.state_dict(), model_t.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # both end on the best validation weights
    assert searched["best_valid_accuracy"] == tested["best_valid_accuracy"]
    assert searched["valid_accuracies"] == tested["valid_accuracies"]


def test_every_validation_accuracy_is_kept_in_order_and_survives_a_resume(tokenizer, tmp_path):
    cfg = finetune_config(RESUME_CFG)  # 18 updates, evaluated every 3: six accuracies
    model, data, _ = fresh(tokenizer, cfg)
    done = finetune(model, data, cfg, tmp_path / "A", progress=False)
    logged = [r["valid_accuracy"] for r in read_metrics(tmp_path / "A") if "valid_accuracy" in r]
    assert done["valid_accuracies"] == logged and len(logged) == 6
    assert max(logged) == done["best_valid_accuracy"]
    model, data, _ = fresh(tokenizer, cfg)
    finetune(model, data, cfg, tmp_path / "B", until=7, progress=False)
    model, data, _ = fresh(tokenizer, cfg)  # as a new process would
    resumed = finetune(model, data, cfg, tmp_path / "B", resume=True, progress=False)
    assert resumed["valid_accuracies"] == done["valid_accuracies"]
