"""Training-step throughput of `gpt1_lib`'s GPT vs Hugging Face's OpenAIGPTLMHeadModel on CPU.

Hand-written benchmark (issue 4). One training step = forward + loss + backward + AdamW step,
fp32, dropout 0.1 as GPT-1 trains. Both models start from the same weights (ours are written
with `save_pretrained` and read back by `transformers`), run in one process with 2 threads and
denormals flushed (`torch.set_flush_denormal(True)`: a post-LN backward on CPU otherwise
produces denormal floats that slow every model 2-10x, so leaving them in would compare
denormal arithmetic, not implementations). The models run in alternating blocks of steps, so
drift in the machine (other processes, clocks) hits all of them alike; the report gives the
median block and the spread.

Shapes: the course's (vocab 8192, ctx 256, 4 x 256, 8 heads, batch 8) and GPT-1's (vocab
40478, ctx 512, 12 x 768, 12 heads, batch 1). Eager mode and `torch.compile` are reported
separately; the GPT-1-shape throughput is also given as a fraction of this CPU's measured fp32
matmul rate, the practical ceiling of a training step made of matmuls.

    python benchmarks/train_step.py                 # everything, writes benchmarks/results/train_step.md
    python benchmarks/train_step.py --no-compile    # eager only
    python benchmarks/train_step.py --quick         # fewer steps, to try a change
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpt1_lib.hardware import cpu_name, load_average  # noqa: E402
from gpt1_lib.model import GPT, GPTConfig, model_config  # noqa: E402


@dataclass(frozen=True)
class Shape:
    name: str
    vocab_size: int
    n_ctx: int
    n_embd: int
    n_layer: int
    n_head: int
    batch_size: int

    def config(self) -> GPTConfig:
        """The model of this shape (GPT-1's post-LN; name and batch_size are not model fields)."""
        return model_config(asdict(self), dropout=0.1)

    @property
    def tokens(self) -> int:
        return self.batch_size * self.n_ctx

    def flops_per_step(self) -> float:
        """Matmul FLOPs of one training step (forward x 3), attention included at full T^2."""
        d, T, L = self.n_embd, self.n_ctx, self.n_layer
        weights = L * 12 * d * d + d * self.vocab_size  # c_attn, c_proj, c_fc, c_proj; LM head
        attention = L * 2 * T * d  # q @ k^T and p @ v per token
        return 3 * 2 * (weights + attention) * self.tokens


SHAPES = {
    "course": Shape("course", 8192, 256, 256, 4, 8, batch_size=8),
    "gpt1": Shape("gpt1", 40478, 512, 768, 12, 12, batch_size=1),
}


class Runner:
    """One model + its AdamW, and a `step()` that does a whole training step."""

    def __init__(self, label: str, model: torch.nn.Module, is_hf: bool, shape: Shape, seed: int):
        self.label, self.model, self.is_hf = label, model.train(), is_hf
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=2.5e-4, weight_decay=0.01, fused=True)
        g = torch.Generator().manual_seed(seed)
        self.idx = torch.randint(shape.vocab_size, (shape.batch_size, shape.n_ctx), generator=g)
        self.targets = torch.roll(self.idx, -1, dims=1)
        # the same loss for both: HF's `labels=` path would add its own shift and copies
        self.loss_fn = torch.compile(self._loss) if "compile" in label else self._loss

    def _loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.is_hf:
            logits = self.model(input_ids=idx).logits
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return self.model(idx, targets)[1]

    def step(self) -> float:
        loss = self.loss_fn(self.idx, self.targets)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()


def build_pair(shape: Shape, seed: int) -> tuple[GPT, torch.nn.Module]:
    """Our GPT and HF's OpenAIGPTLMHeadModel holding the same weights."""
    from transformers import OpenAIGPTLMHeadModel

    torch.manual_seed(seed)
    ours = GPT(shape.config())
    with tempfile.TemporaryDirectory() as tmp:
        ours.save_pretrained(tmp)
        hf = OpenAIGPTLMHeadModel.from_pretrained(tmp, attn_implementation="eager")
    return ours, hf


def time_blocks(runners: list[Runner], blocks: int, steps: int, warmup: int) -> dict:
    """Alternate blocks of `steps` steps between runners; tokens/s of every block."""
    for runner in runners:
        for _ in range(warmup):
            runner.step()
    rates: dict[str, list[float]] = {r.label: [] for r in runners}
    losses: dict[str, float] = {}
    for b in range(blocks):
        order = runners if b % 2 == 0 else runners[::-1]
        for runner in order:
            start = time.perf_counter()
            for _ in range(steps):
                losses[runner.label] = runner.step()
            elapsed = time.perf_counter() - start
            tokens = steps * runner.idx.numel()
            rates[runner.label].append(tokens / elapsed)
    return {"rates": rates, "losses": losses}


def matmul_rate(seconds: float = 3.0) -> float:
    """This CPU's fp32 matmul rate (FLOP/s), best of a few GPT-1-sized GEMMs."""
    best = 0.0
    for m, k, n in ((512, 768, 3072), (512, 3072, 768), (2048, 2048, 2048)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(3):
            a @ b
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            a @ b
            count += 1
        best = max(best, 2 * m * k * n * count / (time.perf_counter() - start))
    return best


def describe_machine() -> list[str]:
    cpu = cpu_name()
    import transformers

    isa = torch.backends.cpu.get_cpu_capability()
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores visible, {torch.get_num_threads()} threads "
        f"used, {isa}",
        f"- {platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}",
    ]


def spread(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def run_shape(shape: Shape, args, compile_mode: bool) -> list[dict]:
    ours, hf = build_pair(shape, args.seed)
    suffix = " + compile" if compile_mode else ""
    runners = [
        Runner(f"gpt1_lib{suffix}", ours, False, shape, args.seed),
        Runner(f"HF OpenAIGPT{suffix}", hf, True, shape, args.seed),
    ]
    start = time.perf_counter()
    warmup = args.warmup + (2 if compile_mode else 0)
    result = time_blocks(runners, args.blocks, args.steps[shape.name], warmup)
    seconds = time.perf_counter() - start
    rows = []
    for runner in runners:
        rates = result["rates"][runner.label]
        rows.append(
            {
                "shape": shape.name,
                "label": runner.label,
                "rates": rates,
                "loss": result["losses"][runner.label],
            }
        )
    print(f"  {shape.name}{suffix}: {seconds:.0f} s", flush=True)
    for row in rows:
        print(f"    {row['label']:28s} {spread(row['rates'])} tok/s", flush=True)
    return rows


def paired_ratio(ours: list[float], theirs: list[float]) -> str:
    """Median (min–max) of block-by-block ratios: each pair ran back to back, so a burst of
    load elsewhere on the machine mostly cancels out of the ratio."""
    ratios = [a / b for a, b in zip(ours, theirs)]
    return f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"


def render(rows: list[dict], peak: float, machine: list[str], notes: list[str]) -> str:
    by = {(r["shape"], r["label"]): r for r in rows}
    lines = [
        "# Training-step throughput: `gpt1_lib` vs Hugging Face `OpenAIGPTLMHeadModel`",
        "",
        "Written by `benchmarks/train_step.py` "
        f"({datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}). One step = forward + "
        "cross-entropy + backward + AdamW (fused), fp32, dropout 0.1, denormals flushed for "
        "every model, same weights, one process, alternating blocks of steps. Tokens/s: median "
        "block (min–max over blocks). × HF, same mode: median (min–max) of the ratios of "
        "blocks run back to back. × HF eager: ratio of the medians.",
        "",
        *machine,
        f"- fp32 matmul rate measured here: {peak / 1e9:,.0f} GFLOP/s",
        *notes,
        "",
        "| shape | model | tokens/s | × HF, same mode | × HF eager | FLOP/s | of matmul rate |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        shape = SHAPES[r["shape"]]
        med = statistics.median(r["rates"])
        hf = statistics.median(by[(r["shape"], "HF OpenAIGPT")]["rates"])
        suffix = " + compile" if r["label"].endswith("compile") else ""
        same = "—"
        if r["label"].startswith("gpt1_lib"):
            same = paired_ratio(r["rates"], by[(r["shape"], "HF OpenAIGPT" + suffix)]["rates"])
        flops = shape.flops_per_step() / shape.tokens * med
        lines.append(
            f"| {r['shape']} (B={shape.batch_size}, T={shape.n_ctx}, {shape.n_layer}×"
            f"{shape.n_embd}, V={shape.vocab_size}) | {r['label']} | {spread(r['rates'])} | "
            f"{same} | {med / hf:.2f}× | {flops / 1e9:,.0f} G | {flops / peak:.0%} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="course,gpt1", help="comma-separated: course, gpt1")
    parser.add_argument("--blocks", type=int, default=8, help="timed blocks per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model")
    parser.add_argument("--no-compile", action="store_true", help="eager mode only")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter blocks")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/train_step.md")
    args = parser.parse_args()
    args.steps = {"course": 3, "gpt1": 1}
    if args.quick:
        args.blocks, args.warmup = 3, 1
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    shapes = [SHAPES[s.strip()] for s in args.shapes.split(",")]

    load_before = load_average(" / ")
    peak = matmul_rate()
    print(f"fp32 matmul: {peak / 1e9:.0f} GFLOP/s", flush=True)
    rows: list[dict] = []
    for shape in shapes:
        rows += run_shape(shape, args, compile_mode=False)
        if not args.no_compile:
            rows += run_shape(shape, args, compile_mode=True)
    notes = [
        f"- load average (1/5/15 min) before: {load_before}, after: {load_average(' / ')} "
        f"(other processes share these cores; the min–max spread shows the noise)",
        f"- {args.blocks} blocks per model, steps per block: "
        + ", ".join(f"{s.name} {args.steps[s.name]}" for s in shapes),
    ]
    text = render(rows, peak, describe_machine(), notes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
