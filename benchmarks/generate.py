"""Greedy generation near the memory-bandwidth limit: gpt1_lib's decoder vs transformers.

Hand-written benchmark (appendix A3, section 2). Course shape (vocab 8192, context 256, 4 layers
x 256, 8 heads), random weights, fp32, 2 CPU threads, denormals flushed for every model. Two
pairs of models hold identical weights:

- GPT-1 (post-LN): `gpt1_lib.GPT` and transformers' OpenAIGPTLMHeadModel, which has no KV
  cache, so its `generate` re-runs the whole text for every token;
- GPT-2 (pre-LN): transformers' GPT2LMHeadModel, the cached peer (`generate(...,
  do_sample=False, use_cache=True)`: its default dynamic cache and SDPA attention), and
  `gpt1_lib.GPT(pre_ln=True)` loaded from it.

gpt1_lib runs `generate(..., temperature=0, decoding=fast_decode_steps)` (its `Decoder`),
section 3's simple cache (the model's forward per token) and no cache. Each contender continues the same 32-token prompt
by 192 tokens, at batch 1 and 8; the models of a pair must produce the same tokens. Rounds
alternate the contenders (rotating their order) so that load from other processes hits them
alike; the tables give the median of the rounds and their spread.

The same run measures the memory bandwidth (a 256 MB tensor copy, counted as read + write)
before each round. The ceiling is the speed at which generation would only read memory: per
step every weight once (the tied LM head once) plus the cached keys and values. A round's
share is its tokens/s over the ceiling at the bandwidth measured just before it (a shared
machine's bandwidth moves between rounds); the tables give the median share and its range.
Top-k and top-p sampling are timed against greedy decoding at batch 1, round by round, in
five times as many rounds: those take a second each, and a cost of a few percent needs many of
them to stand out of a shared machine's noise.

    python benchmarks/generate.py [--rounds 7] [--threads 2]

Writes benchmarks/results/generate.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, OpenAIGPTLMHeadModel

from gpt1_lib.fast_decode import fast_decode_steps as FAST
from gpt1_lib.fast_sampling import fast_sample_next
from gpt1_lib.generate import generate
from gpt1_lib.hardware import cpu_name, load_average
from gpt1_lib.kv_cache import KVCache
from gpt1_lib.model import GPT, model_config
from gpt1_lib.pretrained import state_dict_from_gpt2

RESULTS = Path(__file__).resolve().parent / "results" / "generate.md"
COURSE_SHAPE = dict(vocab_size=8192, n_ctx=256, n_embd=256, n_layer=4, n_head=8)
GPT1_GROUP = ("gpt1_lib decoder", "gpt1_lib simple cache", "gpt1_lib no cache",
              "transformers OpenAIGPT (no cache)")  # fmt: skip
GPT2_GROUP = ("gpt1_lib decoder, GPT-2 weights", "transformers GPT-2 with its cache")


def build_models(seed: int) -> dict[str, torch.nn.Module]:
    """Both pairs of models with identical weights, in eval mode."""
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(seed)
    gpt1 = GPT(model_config(COURSE_SHAPE, dropout=0.0)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        gpt1.save_pretrained(tmp)
        hf_gpt1 = OpenAIGPTLMHeadModel.from_pretrained(tmp).eval()
    hf_gpt2 = GPT2LMHeadModel(GPT2Config(
        vocab_size=COURSE_SHAPE["vocab_size"], n_positions=COURSE_SHAPE["n_ctx"],
        n_embd=COURSE_SHAPE["n_embd"], n_layer=COURSE_SHAPE["n_layer"],
        n_head=COURSE_SHAPE["n_head"], activation_function="gelu_new",  # GPT-1's tanh GELU
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None,
    )).eval()  # fmt: skip
    gpt2 = GPT(model_config(COURSE_SHAPE, dropout=0.0, pre_ln=True)).eval()
    gpt2.load_state_dict(state_dict_from_gpt2(hf_gpt2.state_dict()))
    for hf in (hf_gpt1, hf_gpt2):
        hf.generation_config.pad_token_id = 0  # silences a warning; there is no padding
    return dict(gpt1=gpt1, hf_gpt1=hf_gpt1, gpt2=gpt2, hf_gpt2=hf_gpt2)


def simple_cache_generate(model: GPT, prompt: torch.Tensor, n_new: int) -> torch.Tensor:
    """Section 3's cached loop: the model's own forward over one new token per step."""
    cache = KVCache.for_model(model, prompt.size(0))
    tokens, unseen = [prompt], prompt
    with torch.inference_mode():
        for _ in range(n_new):
            unseen = model(unseen, kv_cache=cache)[0][:, -1].argmax(-1, keepdim=True)
            tokens.append(unseen)
    return torch.cat(tokens, 1)


def contenders(models: dict[str, torch.nn.Module]):
    """name -> function(prompt, n_new) returning (B, T + n_new) greedy token ids."""

    def hf(model):
        def run(prompt: torch.Tensor, n_new: int) -> torch.Tensor:
            with torch.inference_mode():
                return model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                      max_new_tokens=n_new, min_new_tokens=n_new,
                                      do_sample=False, use_cache=True)  # fmt: skip
        return run

    gpt1, gpt2 = models["gpt1"], models["gpt2"]
    return {
        "gpt1_lib decoder": lambda p, n: generate(gpt1, p, n, temperature=0, decoding=FAST),
        "gpt1_lib simple cache": lambda p, n: simple_cache_generate(gpt1, p, n),
        "gpt1_lib no cache": lambda p, n: generate(gpt1, p, n, temperature=0, use_cache=False,
                                                   decoding=FAST),
        "transformers OpenAIGPT (no cache)": hf(models["hf_gpt1"]),
        "gpt1_lib decoder, GPT-2 weights": lambda p, n: generate(gpt2, p, n, temperature=0,
                                                                 decoding=FAST),
        "transformers GPT-2 with its cache": hf(models["hf_gpt2"]),
    }


def sampling_contenders(model: GPT):
    def sampled(**kwargs):
        def run(prompt: torch.Tensor, n_new: int) -> torch.Tensor:
            gen = torch.Generator().manual_seed(0)
            return generate(model, prompt, n_new, temperature=1.0, generator=gen, decoding=FAST,
                            sampling=fast_sample_next, **kwargs)
        return run

    return {"decoder, greedy": lambda p, n: generate(model, p, n, temperature=0, decoding=FAST),
            "decoder, top-k 40": sampled(top_k=40), "decoder, top-p 0.9": sampled(top_p=0.9)}


def copy_bandwidth(megabytes: int = 256, repeat: int = 5) -> float:
    """Bytes per second of a large tensor copy, counting each byte read and written."""
    src = torch.ones(megabytes * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        dst.copy_(src)
        seconds.append(time.perf_counter() - start)
    return 2 * src.numel() * 4 / statistics.median(seconds)


def read_bandwidth(megabytes: int = 256, repeat: int = 5) -> float:
    """Bytes per second of summing a large tensor (read only), for comparison."""
    src = torch.ones(megabytes * 2**20 // 4)
    seconds = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        src.sum()
        seconds.append(time.perf_counter() - start)
    return src.numel() * 4 / statistics.median(seconds[1:])


def bytes_per_run(model: GPT, batch: int, n_prompt: int, n_new: int) -> float:
    """Bytes a generation must read at least: each step every weight once, plus the keys and
    values cached so far (4-byte floats)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())  # tied: once
    c = model.config
    kv = sum(2 * c.n_layer * batch * (n_prompt + t) * c.n_embd * 4 for t in range(n_new))
    return n_new * weights + kv


def time_rounds(runs, prompt, n_new, rounds, bandwidths=None):
    tokens_per_s = {name: [] for name in runs}
    names = list(runs)
    for r in range(rounds):
        if bandwidths is not None:
            bandwidths.append(copy_bandwidth())
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            start = time.perf_counter()
            runs[name](prompt, n_new)
            tokens_per_s[name].append(prompt.size(0) * n_new / (time.perf_counter() - start))
        print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.0f}" for n, v in tokens_per_s.items()),
              flush=True)
    return tokens_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=192)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # for every model: CPU denormals would skew the comparison

    models = build_models(args.seed)
    runs = contenders(models)
    load_before = load_average()
    bandwidths: dict[int, list[float]] = {}  # per batch size, one per round
    results, same = {}, {}
    for batch in args.batches:
        prompt = torch.randint(0, COURSE_SHAPE["vocab_size"], (batch, args.prompt_tokens),
                               generator=torch.Generator().manual_seed(args.seed))
        outputs = {name: run(prompt, args.new_tokens) for name, run in runs.items()}  # warm-up
        for group in (GPT1_GROUP, GPT2_GROUP):
            for name in group:
                same[batch, name] = torch.equal(outputs[name], outputs[group[0]])
        print(f"batch {batch}:", flush=True)
        bandwidths[batch] = []
        results[batch] = time_rounds(runs, prompt, args.new_tokens, args.rounds,
                                     bandwidths[batch])
    prompt = torch.randint(0, COURSE_SHAPE["vocab_size"], (1, args.prompt_tokens),
                           generator=torch.Generator().manual_seed(args.seed))
    print("sampling at batch 1:", flush=True)
    sampling_rounds = 5 * args.rounds  # cheap rounds: many, for a small difference
    sampling = time_rounds(sampling_contenders(models["gpt1"]), prompt, args.new_tokens,
                           sampling_rounds)
    read_bw = read_bandwidth()
    load_after = load_average()

    every_bandwidth = [bw for values in bandwidths.values() for bw in values]
    bandwidth = statistics.median(every_bandwidth)  # the headline figure
    lines = [
        "# Greedy generation against the memory-bandwidth ceiling",
        "",
        f"Written by `benchmarks/generate.py` on {time.strftime('%Y-%m-%d')}: {cpu_name()}, "
        f"{args.threads} threads, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, fp32, denormals flushed. Course shape (vocab 8192, "
        f"context 256, 4 x 256, 8 heads, random weights), {args.prompt_tokens}-token prompt, "
        f"{args.new_tokens} new tokens, greedy, median of {args.rounds} alternating rounds.",
        "",
        f"Memory bandwidth, measured in the same run: {bandwidth / 1e9:.1f} GB/s (a 256 MB "
        f"copy, read + write; {min(every_bandwidth) / 1e9:.1f} - "
        f"{max(every_bandwidth) / 1e9:.1f} over {len(every_bandwidth)} rounds); reading alone "
        f"(a sum) ran at {read_bw / 1e9:.1f} GB/s.",
        "",
    ]
    spreads = []
    for batch, tokens_per_s in results.items():
        need = bytes_per_run(models["gpt1"], batch, args.prompt_tokens, args.new_tokens)
        per_token = need / (batch * args.new_tokens)  # bytes read per generated token
        ceiling = statistics.median(bandwidths[batch]) / per_token
        peer = tokens_per_s["transformers GPT-2 with its cache"]
        lines += [
            f"**Batch {batch}**: at least {per_token / 1e6:.2f} MB read per generated token "
            f"(weights and KV cache) -> ceiling {ceiling:,.0f} tokens/s at this batch's median "
            "bandwidth.",
            "",
            "| contender | tokens/s (median) | min - max | share of ceiling (min - max) | vs "
            "transformers GPT-2 (cached) | same tokens as its twin |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for name, values in tokens_per_s.items():
            median = statistics.median(values)
            spreads.append((max(values) - min(values)) / median)
            shares = [v * per_token / bw for v, bw in zip(values, bandwidths[batch])]
            vs_peer = [v / p for v, p in zip(values, peer)]  # round by round
            lines.append(
                f"| {name} | {median:,.0f} | {min(values):,.0f} - {max(values):,.0f} "
                f"| {statistics.median(shares):.0%} ({min(shares):.0%} - {max(shares):.0%}) "
                f"| {statistics.median(vs_peer):.2f}x "
                f"| {'yes' if same[batch, name] else 'NO'} |"
            )
        lines.append("")
    greedy = sampling["decoder, greedy"]
    lines += [
        "**Sampling cost** (batch 1, GPT-1 weights, temperature 1.0; time per token against "
        f"greedy in the same round, median and range over {sampling_rounds} alternating "
        "rounds):",
        "",
        "| | tokens/s (median) | min - max | time per token vs greedy (min - max) |",
        "|---|---:|---:|---:|",
    ]
    for name, values in sampling.items():
        extra = [g / v - 1 for g, v in zip(greedy, values)]
        lines.append(f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f} - "
                     f"{max(values):,.0f} | {statistics.median(extra):+.0%} ({min(extra):+.0%} "
                     f"- {max(extra):+.0%}) |")
    lines += [
        "",
        f"Load average (1, 5, 15 min) {load_before} before, {load_after} after, on "
        f"{os.cpu_count()} cores; the widest spread between rounds was {max(spreads):.0%} of a "
        "median. Shares and ratios are taken round by round, then their median. Twins: the "
        "gpt1_lib decoder (GPT-1 weights) is the reference of the simple "
        "cache, no cache and OpenAIGPT rows; the decoder on GPT-2 weights is the reference of "
        "transformers' GPT-2.",
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    print(text)
    if not all(same.values()):
        raise SystemExit("the twins disagree on the greedy tokens: see the table")


if __name__ == "__main__":
    main()
