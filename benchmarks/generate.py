"""Greedy generation speed: gpt1_lib with and without its KV cache vs transformers.

Hand-written benchmark (chapter 06). Same weights in both libraries: a randomly initialised
model of the course shape (vocab 8192, context 256, 4 layers x 256, 8 heads) is saved with
`save_pretrained` and loaded into `transformers`' OpenAIGPTLMHeadModel, which keeps no KV cache
for GPT-1. Each contender continues one 32-token prompt by 192 greedy tokens on 2 CPU threads;
the three must produce the same tokens. Rounds alternate the contenders so that load from
other processes hits them alike; the table gives the median of the rounds and their spread.

    python benchmarks/generate.py [--rounds 3] [--threads 2]

Writes benchmarks/results/generate.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import OpenAIGPTLMHeadModel

from gpt1_lib.model import GPT, model_config
from gpt1_lib.sample import generate

RESULTS = Path(__file__).resolve().parent / "results" / "generate.md"
COURSE_SHAPE = dict(vocab_size=8192, n_ctx=256, n_embd=256, n_layer=4, n_head=8)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_models(seed: int) -> tuple[GPT, OpenAIGPTLMHeadModel]:
    """Our model and transformers' model holding the very same weights, both in eval mode."""
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(seed)
    ours = GPT(model_config(COURSE_SHAPE, dropout=0.0)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ours.save_pretrained(tmp)
        theirs = OpenAIGPTLMHeadModel.from_pretrained(tmp).eval()
    theirs.generation_config.pad_token_id = 0  # silences a warning; there is no padding
    return ours, theirs


def contenders(ours: GPT, theirs: OpenAIGPTLMHeadModel):
    """name -> function(prompt, n_new) returning (1, T + n_new) greedy token ids."""

    def hf(prompt: torch.Tensor, n_new: int) -> torch.Tensor:
        with torch.inference_mode():
            return theirs.generate(
                prompt, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False
            )

    return {
        "gpt1_lib, KV cache": lambda p, n: generate(ours, p, n, temperature=0, use_cache=True),
        "gpt1_lib, no cache": lambda p, n: generate(ours, p, n, temperature=0, use_cache=False),
        "transformers generate": hf,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # for every model: CPU denormals would skew the comparison

    ours, theirs = build_models(args.seed)
    prompt = torch.randint(0, COURSE_SHAPE["vocab_size"], (1, args.prompt_tokens),
                           generator=torch.Generator().manual_seed(args.seed))
    runs = contenders(ours, theirs)
    outputs = {name: run(prompt, args.new_tokens) for name, run in runs.items()}  # + warm-up
    reference = outputs["gpt1_lib, KV cache"]
    same = {name: torch.equal(out, reference) for name, out in outputs.items()}

    load_before = os.getloadavg()
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    names = list(runs)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            runs[name](prompt, args.new_tokens)
            wall[name].append(args.new_tokens / (time.perf_counter() - start_wall))
            cpu[name].append(args.new_tokens / (time.process_time() - start_cpu))
            print(f"round {r + 1}: {name:24s} {wall[name][-1]:8.1f} tokens/s", flush=True)
    load_after = os.getloadavg()

    hf_median = statistics.median(wall["transformers generate"])
    lines = [
        "# Greedy generation: gpt1_lib vs transformers",
        "",
        f"Written by `benchmarks/generate.py` on {time.strftime('%Y-%m-%d')}: {cpu_name()}, "
        f"{args.threads} threads, torch {torch.__version__}, transformers "
        f"{transformers.__version__}. Course shape (vocab 8192, context 256, 4 x 256, 8 heads, "
        f"random weights, identical in both libraries), {args.prompt_tokens}-token prompt, "
        f"{args.new_tokens} new tokens, greedy, median of {args.rounds} alternating rounds.",
        "",
        "| contender | tokens/s (median) | min - max | CPU-time tokens/s | vs transformers "
        "| same tokens |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name in runs:
        median = statistics.median(wall[name])
        lines.append(
            f"| {name} | {median:.1f} | {min(wall[name]):.1f} - {max(wall[name]):.1f} "
            f"| {statistics.median(cpu[name]):.1f} | {median / hf_median:.1f}x "
            f"| {'yes' if same[name] else 'NO'} |"
        )
    spread = max((max(w) - min(w)) / statistics.median(w) for w in wall.values())
    lines += [
        "",
        f"Load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, on "
        f"{os.cpu_count()} cores; the widest spread between rounds was {spread:.0%} of a "
        "median. `transformers` has no KV cache for OpenAIGPT, so it re-runs the whole text "
        "for each token, like `gpt1_lib` with `use_cache=False`.",
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)
    if not all(same.values()):
        raise SystemExit("the contenders disagree on the greedy tokens: see the table")


if __name__ == "__main__":
    main()
