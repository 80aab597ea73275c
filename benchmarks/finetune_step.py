"""A fine-tuning update against a pre-training update on the same tokens, on CPU.

Hand-written benchmark (issue 12: "a fine-tuning step costs no more than a pre-training step
on the same tokens"). Both updates are forward + loss + backward + clipping + AdamW step, fp32,
dropout 0.1, 2 threads, denormals flushed, from the same weights:

- pre-training: `GPT(idx, targets)` on a (B*C, T) batch of token ids;
- fine-tuning: `FineTuneModel` on the same ids laid out (B, C, T) as a multiple-choice batch
  (C choices per example, one `(B*C, T)` pass), the head on each `_classify_` token, and
  L3 = L2 + 0.5 * L1 (the LM term over every real token, as GPT-1 trains) — and with
  lm_coef = 0 (no LM term).

The three run in alternating blocks of steps in one process, so drift in the machine hits all
alike; the report gives the median block, the spread, tokens per second and the ratio to the
pre-training update.

    python benchmarks/finetune_step.py            # writes benchmarks/results/finetune_step.md
    python benchmarks/finetune_step.py --quick    # fewer steps, to try a change
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpt1_lib.finetune_model import FineTuneModel, collate, grow_vocab  # noqa: E402
from gpt1_lib.hardware import cpu_name  # noqa: E402
from gpt1_lib.model import GPT, model_config  # noqa: E402
from gpt1_lib.optim import make_optimizer  # noqa: E402

SHAPES = {  # the cpu preset's model and a multiple-choice batch of GPT-1's 32 examples
    "cpu preset (4 x 128, vocab 2048)": {"preset": "cpu", "batch": 32, "choices": 2, "T": 64},
}


def pretraining_update(model: GPT, optimizer, idx: torch.Tensor) -> None:
    _, loss = model(idx[:, :-1], idx[:, 1:])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def finetuning_update(model: FineTuneModel, optimizer, batch: tuple, lm_coef: float) -> None:
    """The fine-tuning loop's update (`FineTuner`): L3 = L2 + lm_coef·L1, clipped, AdamW."""
    out = model(*batch, lm_coef=lm_coef)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def contenders(preset: str, batch: int, choices: int, T: int, seed: int = 0) -> dict:
    """name -> (tokens per update, a function doing one update), all from the same weights."""
    torch.manual_seed(seed)
    config = model_config(preset, dropout=0.1)
    lm = GPT(config)
    ft_gpt = GPT(config)
    ft_gpt.load_state_dict(lm.state_dict())
    grow_vocab(ft_gpt, 3)
    ids = torch.randint(0, config.vocab_size, (batch, choices, T))
    ids[:, :, -1] = config.vocab_size + 2  # every sequence ends on _classify_
    labels = torch.randint(0, choices, (batch,))
    ft_batch = (*collate([x.tolist() for x in ids]), labels)
    flat = torch.cat([ids.view(batch * choices, T), ids.view(batch * choices, T)[:, :1]], 1)
    flat = flat.clamp(max=config.vocab_size - 1)  # one more token: T inputs, T targets
    lm_opt = make_optimizer(lm, 1e-4, 0.01)
    out = {
        "pre-training (GPT, LM loss)": (
            batch * choices * T,
            lambda: pretraining_update(lm, lm_opt, flat),
        )
    }
    for name, coef in (("fine-tuning, L2 + 0.5 L1", 0.5), ("fine-tuning, L2 only", 0.0)):
        model = FineTuneModel(ft_gpt if coef else _copy(ft_gpt), "multiple_choice", choices)
        opt = make_optimizer(model, 1e-4, 0.01)
        out[name] = (
            batch * choices * T,
            lambda m=model, o=opt, c=coef: finetuning_update(m, o, ft_batch, c),
        )
    return out


def _copy(gpt: GPT) -> GPT:
    twin = GPT(gpt.config)
    twin.load_state_dict(gpt.state_dict())
    return twin


def measure(runs: dict, blocks: int, steps: int) -> dict:
    """Seconds per update of each contender: the median over alternating blocks, and the spread."""
    for _, step in runs.values():  # warm up
        step()
    times = {name: [] for name in runs}
    for _ in range(blocks):
        for name, (_, step) in runs.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: (statistics.median(t), min(t), max(t)) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "finetune_step.md"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    torch.set_flush_denormal(True)
    blocks, steps = (3, 2) if args.quick else (7, 4)
    lines = [
        "# A fine-tuning update against a pre-training update on the same tokens",
        "",
        f"Written by `benchmarks/finetune_step.py` on {datetime.date.today()}: {cpu_name()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}; "
        f"fp32, dropout 0.1, {blocks} alternating blocks of {steps} updates (median, min-max).",
        "",
    ]
    for title, shape in SHAPES.items():
        runs = contenders(shape["preset"], shape["batch"], shape["choices"], shape["T"])
        result = measure(runs, blocks, steps)
        base = result["pre-training (GPT, LM loss)"][0]
        lines += [f"## {title}: {shape['batch']} examples x {shape['choices']} choices x {shape['T']} tokens", "",
                  "| update | ms (median) | min-max | tokens/s | time / pre-training |", "|---|---:|---:|---:|---:|"]  # fmt: skip
        for name, (med, lo, hi) in result.items():
            tokens = runs[name][0]
            lines.append(
                f"| {name} | {med * 1e3:.0f} | {lo * 1e3:.0f}-{hi * 1e3:.0f} | {tokens / med:,.0f} | {med / base:.2f} |"
            )
        lines.append("")
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
