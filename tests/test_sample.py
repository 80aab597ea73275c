"""Chapter 07: sampling filters, the KV cache (exactly equal to no cache), generate, stream,
perplexity, the sample command line, and checkpoints that bring GPT-1's tokenizer (no
end-of-text token)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from decoding_helpers import assert_cache_changes_nothing
from tokenizers import Tokenizer

from gpt1_lib.fast_sampling import draw_in_nucleus, fast_sample_next, nucleus_threshold
from gpt1_lib.generate import decode_steps, end_of_text_id, generate, stream, stream_text
from gpt1_lib.kv_cache import KVCache
from gpt1_lib.load import load
from gpt1_lib.model import GPT, GPTConfig
from gpt1_lib.next_token import (
    check_sampling_args,
    draw,
    filter_logits,
    invert_cdf,
    next_token_probs,
    sample_next,
)
from gpt1_lib.openai_tokenizer import load_openai_tokenizer
from gpt1_lib.perplexity import perplexity
from gpt1_lib.sample import main
from gpt1_lib.tokenizer import EOS_ID, decode, encode, train_tokenizer
from gpt1_lib.train import train

ROOT = Path(__file__).resolve().parent.parent
CONFIG = GPTConfig(vocab_size=320, n_ctx=16, n_embd=32, n_layer=2, n_head=4, dropout=0.1)


@pytest.fixture(scope="module")
def model() -> GPT:
    """A random model with weights large enough that its logits spread like a trained one's."""
    torch.manual_seed(0)
    net = GPT(CONFIG)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    return net.eval()


@pytest.fixture(scope="module")
def prompts() -> torch.Tensor:
    return torch.randint(0, CONFIG.vocab_size, (3, 5), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Tokenizer:
    """A byte-level BPE of chapter 01 (<eos> is id 1), small enough for CONFIG's vocabulary."""
    text = tmp_path_factory.mktemp("corpus") / "text.txt"
    text.write_text("to be or not to be, that is the question\n" * 50)
    tok = train_tokenizer(text, CONFIG.vocab_size)
    assert tok.get_vocab_size() <= CONFIG.vocab_size and tok.token_to_id("<eos>") == EOS_ID
    return tok


# --- filters --------------------------------------------------------------------------------


def test_top_k_keeps_exactly_the_k_most_likely():
    logits = torch.tensor([[0.1, 2.0, -1.0, 3.0, 0.5]])
    kept = filter_logits(logits, top_k=2).isfinite()
    assert kept.tolist() == [[False, True, False, True, False]]
    assert filter_logits(logits, top_k=99).isfinite().all()


@pytest.mark.parametrize(("top_p", "kept"), [(0.4, 1), (0.75, 2), (0.85, 3), (0.97, 4), (1.0, 4)])
def test_top_p_keeps_the_smallest_nucleus(top_p, kept):
    probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]])  # sorted: 0.5, 0.3, 0.15, 0.05
    survivors = filter_logits(probs.log(), top_p=top_p).isfinite()
    assert survivors.sum().item() == kept
    order = probs.argsort(descending=True)[0]
    assert survivors[0, order[:kept]].all()  # the most likely ones, in order


def test_temperature_scales_log_probability_gaps():
    logits = torch.randn(2, 50, generator=torch.Generator().manual_seed(0))
    for t in (0.5, 2.0):
        logp = next_token_probs(logits, t).log()
        gaps, base = logp - logp[:, :1], logits - logits[:, :1]
        assert torch.allclose(gaps, base / t, atol=1e-4)
    assert torch.equal(next_token_probs(logits, 0.0).argmax(-1), logits.argmax(-1))
    assert torch.equal(sample_next(logits, 0.0), logits.argmax(-1, keepdim=True))


SAMPLERS = [sample_next, fast_sample_next]  # chapter 07's, and appendix A3's without a sort


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize(
    "settings",
    [dict(temperature=0.7), dict(top_k=3), dict(top_p=0.8), dict(temperature=1.3, top_k=5, top_p=0.7)],
)
def test_sample_next_draws_from_next_token_probs(sampler, settings):
    """Both draws (chapter 07's through the sorted distribution, A3's fast one among the
    candidates only) have the distribution next_token_probs spells out: the same support, the
    same frequencies."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, 1.5, 0.2, -0.5]])
    probs = next_token_probs(logits, **settings)[0]
    n = 40_000
    draws = sampler(logits.expand(n, -1), generator=torch.Generator().manual_seed(0),
                    **settings)[:, 0]
    freq = torch.bincount(draws, minlength=logits.size(1)).float() / n
    assert (freq[probs == 0] == 0).all()
    assert torch.allclose(freq, probs, atol=0.01)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_top_p_on_a_flat_distribution_draws_from_the_whole_nucleus(sampler):
    logits = torch.linspace(0.0, 0.1, 1000)[None]  # nearly flat: the nucleus holds ~900 tokens
    kept = next_token_probs(logits, top_p=0.9)[0] > 0
    assert kept.sum() > 800
    draws = sampler(logits.expand(20_000, -1), top_p=0.9,
                        generator=torch.Generator().manual_seed(0))[:, 0]
    assert kept[draws].all() and draws.unique().numel() == kept.sum()


@pytest.mark.parametrize("tries", [0, 1, 4])
def test_draw_in_nucleus_has_the_nucleus_distribution_whatever_the_tries(tries):
    """Rejected rows fall back to the threshold: with no tries (a GPU's route), one, or the
    default, every row's token has the renormalised nucleus's distribution."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, 1.5, 0.2, -0.5]])
    want = next_token_probs(logits, top_p=0.6)[0]
    n = 40_000
    draws = draw_in_nucleus(logits.softmax(-1).expand(n, -1), 0.6,
                            torch.Generator().manual_seed(tries), tries=tries)[:, 0]
    freq = torch.bincount(draws, minlength=logits.size(1)).float() / n
    assert (freq[want == 0] == 0).all()
    assert torch.allclose(freq, want, atol=0.01)


def test_draw_in_nucleus_with_a_small_nucleus_of_a_flat_distribution():
    """top_p = 0.05 over ~1,000 nearly equal tokens: most draws are rejected, most rows take
    the threshold, and the draws still cover exactly the nucleus."""
    logits = torch.linspace(0.0, 0.1, 1000)[None]
    kept = next_token_probs(logits, top_p=0.05)[0] > 0
    assert 40 < kept.sum() < 60
    draws = draw_in_nucleus(logits.softmax(-1).expand(5_000, -1), 0.05,
                            torch.Generator().manual_seed(0))[:, 0]
    assert kept[draws].all() and draws.unique().numel() == kept.sum()


@pytest.mark.parametrize(("top_p", "tries"), [(0.6, 4), (0.6, 1), (0.2, 4)])
def test_draw_in_nucleus_one_row_at_a_time(top_p, tries):
    """A single row (streaming) takes the route that tests the draw in Python numbers; drawn
    one row at a time it has the nucleus's distribution, rejections and threshold included."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, 1.5, 0.2, -0.5]])
    want = next_token_probs(logits, top_p=top_p)[0]
    probs, gen, n = logits.softmax(-1), torch.Generator().manual_seed(tries), 10_000
    draws = torch.cat([draw_in_nucleus(probs, top_p, gen, tries=tries) for _ in range(n)])
    assert draws.shape == (n, 1)
    freq = torch.bincount(draws[:, 0], minlength=logits.size(1)).float() / n
    assert (freq[want == 0] == 0).all()
    assert torch.allclose(freq, want, atol=0.015)


@pytest.mark.parametrize("total", [0.99, 1.0, 1.01])
def test_draw_gives_the_last_column_the_rest(total):
    """Probabilities whose float total misses 1: every uniform number lands on a column, the
    last one taking what lies past the others' ends."""
    probs = torch.tensor([[0.25, 0.25, total - 0.5]]).expand(40_000, -1)
    columns = draw(probs, None, torch.Generator().manual_seed(0))
    freq = torch.bincount(columns[:, 0], minlength=3).float() / len(columns)
    assert columns.max() == 2 and torch.allclose(freq, torch.tensor([0.25, 0.25, 0.5]), atol=0.01)
    ids = torch.tensor([[7, 8, 9]]).expand(40_000, -1)
    assert torch.equal(draw(probs, ids, torch.Generator().manual_seed(0)), columns + 7)
    one_column = invert_cdf(torch.ones(5, 0), torch.Generator().manual_seed(0))
    assert torch.equal(one_column, torch.zeros(5, 1, dtype=torch.long))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_top_k_1_is_greedy(sampler):
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampler(logits, top_k=1, top_p=0.5), logits.argmax(-1, keepdim=True))
    assert torch.equal(sampler(logits, 0.0), logits.argmax(-1, keepdim=True))


@pytest.mark.parametrize("top_p", [0.05, 0.5, 0.9, 0.999])
def test_nucleus_threshold_keeps_what_sorting_keeps(top_p):
    logits = torch.randn(6, 1000, generator=torch.Generator().manual_seed(1)) * 3
    probs = logits.softmax(dim=-1)
    kept = probs >= nucleus_threshold(probs, top_p)
    assert torch.equal(kept, next_token_probs(logits, top_p=top_p) > 0)


@pytest.mark.parametrize(
    "bad",
    [
        dict(temperature=-0.1),
        dict(temperature=float("nan")),
        dict(top_k=0),
        dict(top_k=2.5),
        dict(top_p=0.0),
        dict(top_p=1.01),
        dict(max_new_tokens=-1),
    ],
)
def test_bad_sampling_settings_fail_clearly(bad, model, prompts):
    with pytest.raises(ValueError, match="must be"):
        check_sampling_args(**bad)
    with pytest.raises(ValueError, match="must be"):
        generate(model, prompts, **{"max_new_tokens": 3, **bad})


# --- the KV cache: exactly the same as no cache -----------------------------------------------


@pytest.mark.parametrize("n_new", [CONFIG.n_ctx - 5, 3 * CONFIG.n_ctx])  # inside / past n_ctx
def test_cache_gives_the_same_greedy_tokens_and_logits(model, prompts, n_new):
    assert_cache_changes_nothing(model, prompts, n_new)


def test_past_n_ctx_the_window_slides_like_the_cropped_model(model, prompts):
    out = generate(model, prompts, 2 * CONFIG.n_ctx, temperature=0)
    with torch.no_grad():  # every token is the argmax of the model fed the n_ctx before it
        for t in range(prompts.size(1), out.size(1)):
            window = out[:, max(0, t - CONFIG.n_ctx) : t]
            assert torch.equal(model(window)[0][:, -1].argmax(-1), out[:, t])


def test_cache_gives_the_same_samples_for_the_same_seed(model, prompts):
    runs = [
        generate(model, prompts, 40, temperature=1.0, top_p=0.95, use_cache=use,
                 generator=torch.Generator().manual_seed(3))
        for use in (True, False)
    ]
    assert torch.equal(runs[0], runs[1])


def test_prefill_then_one_token_matches_the_full_forward(model, prompts):
    cache = KVCache.for_model(model, prompts.size(0))
    nxt = torch.tensor([[4], [5], [6]])
    with torch.no_grad():
        model(prompts, kv_cache=cache)
        assert cache.length == prompts.size(1)
        step = model(nxt, kv_cache=cache)[0][:, -1]
        full = model(torch.cat([prompts, nxt], 1))[0][:, -1]
    assert cache.length == prompts.size(1) + 1
    assert torch.allclose(step, full, atol=1e-5, rtol=0)


def test_cache_refuses_overflow_and_the_wrong_batch(model):
    cache = KVCache.for_model(model, 2)
    k = torch.zeros(2, CONFIG.n_head, CONFIG.n_ctx, CONFIG.head_dim)
    cache[0].update(k, k)
    with pytest.raises(ValueError, match="reset"):
        cache[0].update(k[:, :, :1], k[:, :, :1])
    with pytest.raises(ValueError, match="batch size"):
        cache[1].update(k[:1, :, :1], k[:1, :, :1])


# --- generate ---------------------------------------------------------------------------------


def test_generate_shape_dtype_and_mode(model, prompts):
    model.train()
    out = generate(model, prompts, 7, temperature=0.8, top_k=5)
    assert model.training  # put back as it was
    model.eval()
    assert out.shape == (3, 12) and out.dtype == torch.long
    assert torch.equal(out[:, :5], prompts)
    assert generate(model, prompts, 0).shape == prompts.shape


def test_greedy_generate_is_the_naive_loop(model, prompts):
    idx = prompts
    with torch.no_grad():
        for _ in range(10):
            idx = torch.cat([idx, model(idx)[0][:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(generate(model, prompts, 10, temperature=0), idx)


def test_seeded_sampling_repeats_and_seeds_differ(model, prompts):
    def sample(seed):
        return generate(model, prompts, 30, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(sample(0), sample(0))
    assert not torch.equal(sample(0), sample(1))


def test_top_k_samples_only_from_the_top_k(model, prompts):
    gen = torch.Generator().manual_seed(0)
    k = 3

    def pick(logits):
        token = sample_next(logits, 1.5, top_k=k, generator=gen)
        assert (logits.topk(k).indices == token).any(-1).all()
        return token

    with torch.inference_mode():
        steps = list(decode_steps(model, prompts, 50, pick))
    assert len({t.item() for _, tok in steps for t in tok}) > k  # the check saw varied draws


def test_vocab_size_keeps_draws_below_it(model, prompts):
    out = generate(model, prompts, 60, temperature=2.0, vocab_size=50,
                   generator=torch.Generator().manual_seed(0))
    assert out[:, 5:].max() < 50 and out[:, 5:].unique().numel() > 10


def test_eos_stops_each_row_and_then_pads_it(model, prompts):
    free = generate(model, prompts, 12, temperature=0)[:, 5:]
    eos = free[0, 3].item()  # a token row 0 produces by its 4th step
    out = generate(model, prompts, 12, temperature=0, eos_id=eos)[:, 5:]
    ends = [(row == eos).nonzero()[0].item() + 1 if (row == eos).any() else 12 for row in free]
    assert out.size(1) == max(ends) < 12 or out.size(1) == 12 == max(ends)
    for row, end in enumerate(ends):
        assert torch.equal(out[row, :end], free[row, :end])  # the same text up to <eos>
        assert (out[row, end:] == eos).all()  # then only <eos>


def test_long_prompt_conditions_on_its_last_n_ctx_tokens(model):
    long = torch.randint(0, CONFIG.vocab_size, (1, 3 * CONFIG.n_ctx))
    out = generate(model, long, 5, temperature=0)
    tail = generate(model, long[:, -CONFIG.n_ctx :], 5, temperature=0)
    assert torch.equal(out[:, :-5], long) and torch.equal(out[:, -5:], tail[:, -5:])


def test_empty_prompt_is_refused_with_a_hint(model):
    with pytest.raises(ValueError, match="eos"):
        generate(model, torch.zeros(1, 0, dtype=torch.long), 3)


# --- perplexity -------------------------------------------------------------------------------


def test_perplexity_of_a_short_text_is_exp_of_the_loss(model):
    ids = torch.randint(0, CONFIG.vocab_size, (CONFIG.n_ctx + 1,))
    with torch.no_grad():
        loss = model(ids[None, :-1], ids[None, 1:])[1].item()
    assert perplexity(model, ids) == pytest.approx(math.exp(loss), rel=1e-5)


def test_perplexity_with_stride_one_gives_every_token_its_full_window(model):
    ids = torch.randint(0, CONFIG.vocab_size, (3 * CONFIG.n_ctx,))
    nll = []
    with torch.no_grad():
        for j in range(1, ids.numel()):  # the slow definition, one token at a time
            window = ids[max(0, j - CONFIG.n_ctx) : j]
            nll.append(-model(window[None])[0][0, -1].log_softmax(-1)[ids[j]].item())
    expected = math.exp(sum(nll) / len(nll))
    assert perplexity(model, ids, stride=1, batch_size=7) == pytest.approx(expected, rel=1e-5)
    disjoint = perplexity(model, ids, stride=CONFIG.n_ctx)
    assert disjoint != pytest.approx(expected, rel=1e-4)  # less context: a different number


def test_perplexity_refuses_bad_input(model):
    with pytest.raises(ValueError, match="stride"):
        perplexity(model, torch.arange(40), stride=CONFIG.n_ctx + 1)
    with pytest.raises(ValueError, match="two tokens"):
        perplexity(model, torch.tensor([3]))


# --- streaming --------------------------------------------------------------------------------


def test_stream_text_never_splits_a_character(tokenizer):
    text = "to be 🌹 or ü not"  # the rose and ü are bytes this tokenizer has not merged
    ids = encode(tokenizer, text)
    inside = [n for n in range(1, len(ids)) if decode(tokenizer, ids[:n]).endswith("\ufffd")]
    assert inside  # some prefixes end halfway through a character
    pieces = list(stream_text(tokenizer, ids))
    assert "".join(pieces) == text
    assert not any("\ufffd" in piece for piece in pieces)
    cut = list(stream_text(tokenizer, ids[: inside[0]]))  # ends inside the rose: still shown
    assert "".join(cut) == decode(tokenizer, ids[: inside[0]])


def test_stream_prints_what_generate_makes(model, tokenizer):
    prompt = "to be"
    idx = torch.tensor([encode(tokenizer, prompt)])
    out = generate(model, idx, 25, temperature=0, vocab_size=tokenizer.get_vocab_size())
    new = out[0, idx.size(1) :].tolist()
    if EOS_ID in new:
        new = new[: new.index(EOS_ID)]
    streamed = "".join(stream(model, tokenizer, prompt, 25, temperature=0))
    assert streamed == decode(tokenizer, encode(tokenizer, prompt) + new)[len(prompt) :]
    from_eos = generate(model, torch.tensor([[EOS_ID]]), 5, temperature=0,
                        vocab_size=tokenizer.get_vocab_size())[0, 1:].tolist()
    from_eos = from_eos[: from_eos.index(EOS_ID)] if EOS_ID in from_eos else from_eos
    assert "".join(stream(model, tokenizer, "", 5, temperature=0)) == decode(tokenizer, from_eos)


# --- the command line -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(model, tokenizer, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("saved")
    model.save_pretrained(directory)
    tokenizer.save(str(directory / "tokenizer.json"))
    return directory


def run_main(*argv: str) -> str:
    try:
        main(list(argv))
    except SystemExit as exit_:
        assert exit_.code not in (0, None)
        message = str(exit_.code)
        assert message.startswith("error: ") and "\n" not in message
        return message
    return ""


def test_cli_streams_repeatable_samples(saved, capsys):
    args = ["--checkpoint", str(saved), "--prompt", "to be", "--max-new-tokens", "20",
            "--top-k", "20", "--seed", "5", "--num-samples", "2"]
    assert run_main(*args) == ""
    first = capsys.readouterr().out
    run_main(*args)
    assert capsys.readouterr().out == first
    assert first.count("--- sample") == 2 and first.count("to be") >= 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--top-p", "0"], "top_p"),
        (["--top-p", "1.5"], "top_p"),
        (["--top-k", "0"], "top_k"),
        (["--temperature", "-1"], "temperature"),
        (["--max-new-tokens", "-1"], "max_new_tokens"),
    ],
)
def test_cli_rejects_bad_settings(saved, args, says):
    assert says in run_main("--checkpoint", str(saved), "--prompt", "x", *args)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("run"))


def train_tiny_run(work: Path) -> Path:
    """A real (tiny, 3-step) chapter-05 training run on a small text file."""
    text = work / "text.txt"
    text.write_text("to be or not to be, that is the question\n" * 400)
    config = dict(dataset=str(text), vocab_size=300, n_ctx=16, n_embd=32, n_layer=1, n_head=2,
                  batch_size=4, max_steps=3, warmup_steps=1, eval_interval=3, eval_iters=1,
                  ckpt_interval=3, log_interval=1, device="cpu")
    train(config, work / "run", progress=False, work_dir=work / "cache")
    return work / "run"


def test_cli_samples_a_training_run(run_dir, capsys):
    assert run_main("--checkpoint", str(run_dir), "--prompt", "to be", "--max-new-tokens", "8",
                    "--temperature", "0") == ""
    assert capsys.readouterr().out.startswith("to be")


def test_cli_rejects_missing_and_corrupt_checkpoints(saved, run_dir, tmp_path):
    assert "no checkpoint directory" in run_main("--checkpoint", str(tmp_path / "nope"))
    assert "neither a training run" in run_main("--checkpoint", str(tmp_path))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (corrupt / name).write_text((saved / name).read_text())
    (corrupt / "model.safetensors").write_bytes(b"not a tensor file")
    assert run_main("--checkpoint", str(corrupt))
    broken_run = tmp_path / "broken_run"
    broken_run.mkdir()
    (broken_run / "tokenizer.json").write_text((run_dir / "tokenizer.json").read_text())
    assert "no checkpoint" in run_main("--checkpoint", str(broken_run))
    (broken_run / "ckpt_best.pt").write_bytes((run_dir / "ckpt_best.pt").read_bytes()[:1000])
    assert "corrupt" in run_main("--checkpoint", str(broken_run))
    assert (broken_run / "ckpt_best.pt").stat().st_size == 1000  # reading never destroys it


def test_cli_crops_a_long_prompt_with_a_note(saved, capsys):
    assert run_main("--checkpoint", str(saved), "--prompt", "to be or not " * 40,
                    "--max-new-tokens", "3") == ""
    assert "note: the prompt has" in capsys.readouterr().err


def test_cli_hub_id_offline_is_a_clean_error():
    from gpt1_lib.hub import hub_reachable

    if hub_reachable():
        pytest.skip("the Hugging Face hub is reachable: this checks the offline message only")
    assert "hub" in run_main("--checkpoint", "openai-gpt", "--prompt", "hello")


def test_python_dash_m_runs_and_errors_without_traceback(saved):
    ok = subprocess.run(
        [sys.executable, "-m", "gpt1_lib.sample", "--checkpoint", str(saved), "--prompt", "to",
         "--max-new-tokens", "5", "--temperature", "0"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("to"), ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "gpt1_lib.sample", "--checkpoint", str(saved), "--top-p", "2"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "top_p" in bad.stderr


# --- the checkpoint's own tokenizer: GPT-1's has no end-of-text token ---------------------


GPT1_MERGES = ["t h", "th e</w>", "a n", "an d</w>", "i s</w>"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"
GPT1_VOCAB = {
    token: i
    for i, token in enumerate(
        ["<unk>", ".", *LETTERS, *(c + "</w>" for c in LETTERS), ".</w>",
         *("".join(m.split()) for m in GPT1_MERGES)]
    )
}


def write_gpt1_tokenizer(folder: Path, names=("vocab.json", "merges.txt")) -> None:
    """A tiny vocabulary in GPT-1's layout: <unk> = 0, "." = 1, `</w>` ends a word."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / names[0]).write_text(json.dumps(GPT1_VOCAB))
    (folder / names[1]).write_text("#version: 0.2\n" + "\n".join(GPT1_MERGES) + "\n")


def id1_model(vocab_size: int) -> GPT:
    """A tiny GPT whose greedy choice is always id 1 ("." for GPT-1, <eos> for the book).

    The last LayerNorm outputs its bias (all ones) at every position, so each logit is the sum
    of its embedding row; row 1 is all ones, the others are N(0, 0.02) noise.
    """
    torch.manual_seed(0)
    net = GPT(GPTConfig(vocab_size=vocab_size, n_ctx=16, n_embd=16, n_layer=1, n_head=2))
    with torch.no_grad():
        net.tokens_embed.weight[1] = 1.0
        net.h[-1].ln_2.weight.zero_()
        net.h[-1].ln_2.bias.fill_(1.0)
    return net.eval()


@pytest.fixture(scope="module")
def gpt1_dir(tmp_path_factory) -> Path:
    """A save_pretrained directory with GPT-1-format vocab.json + merges.txt inside."""
    directory = tmp_path_factory.mktemp("gpt1_format")
    id1_model(len(GPT1_VOCAB)).save_pretrained(directory)
    write_gpt1_tokenizer(directory)
    return directory


def test_the_tiny_vocabulary_is_in_gpt1_layout(gpt1_dir):
    tok = load_openai_tokenizer(gpt1_dir)
    assert tok.get_vocab_size() == len(GPT1_VOCAB)
    assert (tok.id_to_token(0), tok.id_to_token(1)) == ("<unk>", ".")
    assert [tok.id_to_token(i) for i in encode(tok, "The")] == ["the</w>"]  # merged, lower-cased


def test_load_reads_gpt1_files_and_finds_no_end_of_text(gpt1_dir, tokenizer):
    model, tok = load(gpt1_dir)
    assert end_of_text_id(tok) is None
    assert tok.get_vocab() == GPT1_VOCAB and not model.training
    assert end_of_text_id(tokenizer) == EOS_ID == tokenizer.token_to_id("<eos>")


@pytest.mark.parametrize(
    ("where", "names"),
    [("parent", ("vocab.json", "merges.txt")),
     ("inside", ("encoder_bpe_40000.json", "vocab_40000.bpe"))],  # OpenAI's release names
)
def test_gpt1_files_beside_the_checkpoint_or_under_release_names(tmp_path, where, names):
    checkpoint = tmp_path / "model"
    id1_model(len(GPT1_VOCAB)).save_pretrained(checkpoint)
    write_gpt1_tokenizer(tmp_path if where == "parent" else checkpoint, names)
    _, tok = load(checkpoint)
    assert tok.get_vocab() == GPT1_VOCAB and end_of_text_id(tok) is None


def test_a_checkpoint_without_any_tokenizer_is_refused(tmp_path):
    id1_model(len(GPT1_VOCAB)).save_pretrained(tmp_path / "model")
    assert "no tokenizer" in run_main("--checkpoint", str(tmp_path / "model"), "--prompt", "x")


def test_cli_gpt1_tokenizer_runs_to_max_new_tokens_past_every_period(gpt1_dir, capsys):
    assert run_main("--checkpoint", str(gpt1_dir), "--prompt", "The THEN", "--temperature", "0",
                    "--max-new-tokens", "9") == ""
    # lower-cased, `</w>` turned into spaces, then nine "." tokens: none ended the text
    assert capsys.readouterr().out == "the then " + "." * 9 + "\n"


def test_stream_with_gpt1_tokenizer_is_generate_decoded(gpt1_dir, model):
    tok = load_openai_tokenizer(gpt1_dir)
    prompt = encode(tok, "The band is")
    idx = torch.tensor([prompt])

    def seeded():
        return torch.Generator().manual_seed(4)

    out = generate(model, idx, 30, temperature=1.5, generator=seeded(),
                   vocab_size=tok.get_vocab_size())
    new = out[0, len(prompt):].tolist()
    assert len(new) == 30 and max(new) < len(GPT1_VOCAB) and len(set(new)) > 5
    text = "".join(stream(model, tok, prompt, 30, temperature=1.5, generator=seeded()))
    assert text == decode(tok, prompt + new)[len("the band is"):]
    assert "</w>" not in text and text == text.lower() and " " in text.strip()


def test_an_empty_prompt_needs_an_end_of_text_token(gpt1_dir):
    model, tok = load(gpt1_dir)
    with pytest.raises(ValueError, match="pass a prompt"):
        next(stream(model, tok, "", 5))
    message = run_main("--checkpoint", str(gpt1_dir), "--max-new-tokens", "3")
    assert "no end-of-text token" in message and "--prompt" in message


def test_the_book_tokenizer_still_stops_at_eos(tokenizer, tmp_path, capsys):
    model = id1_model(CONFIG.vocab_size)  # the same greedy choice, id 1: <eos> this time
    model.save_pretrained(tmp_path)
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    _, tok = load(tmp_path)
    eos = end_of_text_id(tok)
    assert eos == EOS_ID
    idx = torch.tensor([encode(tok, "to be")])
    assert generate(model, idx, 10, temperature=0, eos_id=eos).size(1) == idx.size(1) + 1
    assert "".join(stream(model, tok, "to be", 10, temperature=0)) == ""
    assert "".join(stream(model, tok, "to be", 3, temperature=0, stop_at_eos=False)) == "<eos>" * 3
    assert run_main("--checkpoint", str(tmp_path), "--prompt", "to be", "--temperature", "0",
                    "--max-new-tokens", "10") == ""
    assert capsys.readouterr().out == "to be\n"  # the sample ended at once, at <eos>


def test_hub_id_uses_gpt1_files_from_the_local_hf_cache(gpt1_dir, tmp_path, monkeypatch, capsys):
    """`openai-gpt` offline: the model and vocab.json + merges.txt come from the HF cache."""
    from huggingface_hub import constants

    repo = tmp_path / "models--openai-community--openai-gpt"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in ("config.json", "model.safetensors", "vocab.json", "merges.txt"):
        (snapshot / f).write_bytes((gpt1_dir / f).read_bytes())
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("gpt1_lib.hub.hub_reachable", lambda *a, **k: False)
    monkeypatch.setattr("gpt1_lib.load.hub_reachable", lambda *a, **k: False)
    _, tok = load("openai-gpt")
    eos = end_of_text_id(tok)
    assert eos is None and tok.get_vocab() == GPT1_VOCAB
    assert run_main("--checkpoint", "openai-gpt", "--prompt", "the", "--temperature", "0",
                    "--max-new-tokens", "4") == ""
    assert capsys.readouterr().out == "the ....\n"
    (snapshot / "merges.txt").unlink()  # a cache without the tokenizer: a clean error
    assert "tokenizer" in run_main("--checkpoint", "openai-gpt", "--prompt", "the")


def test_real_gpt1_greedy_golden_continuation_through_load():
    from gpt1_lib.hub import hub_reachable

    if not hub_reachable():
        pytest.skip("the Hugging Face hub is unreachable (or HF_HUB_OFFLINE is set): "
                    "cannot download openai-community/openai-gpt")
    model, tok = load("openai-gpt")
    eos = end_of_text_id(tok)
    assert eos is None and (tok.id_to_token(0), tok.id_to_token(1)) == ("<unk>", ".")
    text = "the president is" + "".join(stream(model, tok, "the president is", 6, temperature=0))
    assert text.replace(" .", ".").startswith("the president is a very good man.")
