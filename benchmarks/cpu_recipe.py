"""How the `cpu` preset was found: chapter 06's recipe table (section 8) and its longer runs (11).

Hand-written benchmark. Chapter 06 quotes five training runs of about four minutes on two CPU
cores, from the first `cpu` preset (4 x 256, 160 updates) to today's (4 x 128, 2,200 updates),
and what resuming the finished 2,200-update run to 3,300 and then 4,400 updates buys. This script
trains them again with the library's own `gpt1_lib.train.train`, starting from the `cpu` preset
and changing only what a table row changes (the first preset is taken whole from git history,
commit 89e8463), and scores each run's last checkpoint in nats per byte over the whole
validation split with chapter 07's sliding window (`gpt1_lib.perplexity.perplexity`, default
stride). One run per recipe: the seconds depend on the machine and its load, the losses do not.

    GPT1_DATA_MIRROR=/work/shared/data HF_HUB_OFFLINE=1 python benchmarks/cpu_recipe.py
    python benchmarks/cpu_recipe.py --quick     # every run 50x shorter, to try a change

Runs go to build/bench/cpu_recipe/ (retrained on every invocation). Writes
benchmarks/results/cpu_recipe.md and benchmarks/results/cpu_recipe.json (--quick: the same
names under build/bench/cpu_recipe/).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpt1_lib.checkpoint import load_model  # noqa: E402
from gpt1_lib.config import load_config as checked  # noqa: E402
from gpt1_lib.hardware import cpu_name, load_average  # noqa: E402
from gpt1_lib.perplexity import perplexity  # noqa: E402
from gpt1_lib.profiles import load_config  # noqa: E402
from gpt1_lib.token_cache import prepare_tokens  # noqa: E402
from gpt1_lib.tokenizer import decode  # noqa: E402
from gpt1_lib.tokenizer_cache import prepare_tokenizer  # noqa: E402
from gpt1_lib.train import read_metrics, train  # noqa: E402

# The first preset, gpt1_lib/configs/cpu.yaml as of commit 89e8463, where it differs from today's
# (its evaluation, checkpoint and log intervals included: they do not change what is trained).
FIRST = dict(n_embd=256, n_head=8, dropout=0.1, batch_size=16, lr=2.0e-3, weight_decay=0.01,
             warmup_steps=20, max_steps=160, eval_interval=20, ckpt_interval=20, log_interval=5,
             keep_every=0)  # fmt: skip
W192 = dict(n_embd=192, n_head=6)
RECIPES = [  # (the table's first column, overrides of today's cpu preset)
    ("256 / 8, the first preset", FIRST),
    ("192 / 6", {**W192, "batch_size": 16, "lr": 3.0e-3, "max_steps": 700}),
    ("192 / 6", {**W192, "batch_size": 8, "lr": 3.0e-3, "max_steps": 1400}),
    ("192 / 6", {**W192, "batch_size": 4, "lr": 2.0e-3, "max_steps": 2800}),
    ("128 / 4, today's preset", {}),
]
MORE = (3300, 4400)  # section 11: the finished 2,200-update run resumed to these, in order
PROBE = 1200  # the update whose validation loss section 8 compares between widths
QUICK = 50  # --quick divides every run's updates by this


def quick(cfg: dict[str, Any]) -> dict[str, Any]:
    """A 50x shorter run of `cfg`, evaluated every few updates: only to test this script."""
    steps = max(4, cfg["max_steps"] // QUICK)
    return {**cfg, "max_steps": steps, "warmup_steps": min(cfg["warmup_steps"], steps // 4),
            "eval_interval": 4, "ckpt_interval": 4, "log_interval": 2, "keep_every": 0}  # fmt: skip


def score(run_dir: Path, which: str, val_ids: np.ndarray, n_bytes: int) -> dict[str, float]:
    """Nats per token and per byte of the whole validation split under one checkpoint."""
    nats = math.log(perplexity(load_model(run_dir, which), val_ids))
    return {"nats_per_token": nats, "nats_per_byte": nats * (len(val_ids) - 1) / n_bytes}


def measure(run_dir: Path, summary: dict[str, Any], wall: float, val: tuple) -> dict[str, Any]:
    """What the tables need from a run just trained: its score, speed and loss curve."""
    evals = [r for r in read_metrics(run_dir) if "val_loss" in r]
    model = load_model(run_dir, "last")
    out = {
        "steps": summary["steps"], "wall_s": wall, "train_s": summary["train_seconds"],
        "tokens_per_s": summary["tokens_per_s"], "tokens_seen": summary["tokens_seen"],
        "dtype": summary["dtype"], "params": sum(p.numel() for p in model.parameters()),
        "final_train_loss": summary["final_train_loss"], "final_val_loss": evals[-1]["val_loss"],
        "best_val_loss": summary["best_val_loss"],
        "val_loss_at_probe": next((r["val_loss"] for r in evals if r["step"] == PROBE), None),
        "gap_first": [evals[0]["step"], evals[0]["val_loss"] - evals[0]["train_loss"]],
        "gap_last": [evals[-1]["step"], evals[-1]["val_loss"] - evals[-1]["train_loss"]],
        "curve": [{k: r.get(k) for k in ("step", "train_loss", "val_loss")} for r in evals],
        **score(run_dir, "last", *val),
    }  # fmt: skip
    if summary["best_val_loss"] < out["final_val_loss"]:  # the best checkpoint is not the last
        out["best_checkpoint"] = score(run_dir, "best", *val)
    return out


def fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def sci(x: float) -> str:
    return f"{x:.0e}".replace("e-0", "e-")  # 2e-3, as chapter 06 writes it


def report(runs: list[dict], more: list[dict], meta: dict[str, Any]) -> str:
    """The Markdown report: how it was made, then section 8's and section 11's tables."""
    rows = [
        f"| {r['name']} | {r['config']['batch_size']} | {sci(r['config']['lr'])} | "
        f"{r['steps']:,} | {r['params'] / 1e6:.2f}M | {r['wall_s']:.0f} | "
        f"{r['tokens_per_s']:,.0f} | {r['final_train_loss']:.3f} | {fmt(r['val_loss_at_probe'])} "
        f"| {r['gap_first'][1]:.2f} → {r['gap_last'][1]:.2f} | **{r['nats_per_byte']:.3f}** |"
        for r in runs
    ]
    base, total = runs[-1], 0.0
    rows11 = [f"| {base['steps']:,} (section 8) | — | — | {base['nats_per_byte']:.3f} | "
              f"{base['final_train_loss']:.2f} |"]  # fmt: skip
    for m in more:
        total += m["wall_s"]
        rows11.append(f"| {m['steps']:,} | {total:.0f} s | {m['tokens_per_s']:,.0f} | "
                      f"{m['nats_per_byte']:.3f} | {m['final_train_loss']:.2f} |")  # fmt: skip
    end = more[-1] if more else base
    fell_train = base["final_train_loss"] - end["final_train_loss"]
    fell_val = base["nats_per_token"] - end["nats_per_token"]
    fell_probe = base["final_val_loss"] - end["final_val_loss"]
    best = [f"{r['name']} ({r['steps']:,} updates): {r['best_checkpoint']['nats_per_byte']:.3f}"
            for r in runs + more if "best_checkpoint" in r]  # fmt: skip
    return "\n".join([
        "# The `cpu` preset's recipe: chapter 06, sections 8 and 11", "",
        f"Written by `benchmarks/cpu_recipe.py` ({meta['date']}); command: `{meta['command']}`; "
        f"the whole invocation took {meta['wall_s'] / 60:.1f} min; code: `{meta['code']}`.", "",
        f"- Machine: {meta['cpu']}, {meta['threads']} torch threads, denormals flushed; "
        f"torch {meta['torch']}, training dtype {runs[0]['dtype']}; load average before "
        f"{meta['load'][0]}, after {meta['load'][1]}.",
        "- **One run per recipe.** Seconds and tokens/s depend on the machine and its load "
        "(one training at a time; other processes may have shared the cores); the losses are "
        "deterministic on this machine (same seed, same thread count).",
        "- Every run is `gpt1_lib.train.train` from today's `cpu` preset with only the row's "
        "changes. Rows 2–5 keep the preset's dropout 0, weight decay 0.1 and 100 warmup "
        "updates. The first row is the first preset whole, from git history (commit 89e8463): "
        "dropout 0.1, weight decay 0.01, **20 warmup updates**, and its evaluation, checkpoint "
        "and log intervals (20, 20, 5 updates; they change the seconds, not the training).",
        f"- Tokenizer: byte-level BPE of {runs[0]['config']['vocab_size']} ids trained on the "
        f"training 90 % only; validation split: {meta['val_tokens']:,} tokens, "
        f"{meta['val_bytes']:,} bytes predicted. Nats per byte = ln(perplexity) × predicted "
        "tokens / their UTF-8 bytes, perplexity by `gpt1_lib.perplexity.perplexity` (sliding "
        "window, stride n_ctx / 2) of each run's **last** checkpoint.",
        "- seconds: wall time of the `train` call (data from the cache, evaluations and "
        "checkpoints included); tokens/s: the trainer's, over the updates only; training "
        "loss: the trainer's mean over the last logged updates (20; the first preset 5). "
        f"val loss @{PROBE:,} and the gap (validation minus training loss, first → last "
        "evaluation) use the trainer's 8 fixed validation batches, not the whole split.", "",
        "## Section 8: the recipes", "",
        f"| width / heads | batch | peak lr | updates | parameters | seconds | tokens/s | final "
        f"train loss | val loss @{PROBE:,} | train–val gap | nats per byte |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", *rows, "",
        "## Section 11: the 2,200-update run resumed", "",
        "The last row's run directory is copied and resumed in it with `max_steps` "
        f"{' and then '.join(f'{m:,}' for m in MORE)} (`train(None, dir, resume=True, "
        "overrides={'max_steps': ...})`, as `python -m gpt1_lib.train --out-dir DIR --resume "
        "--set max_steps=...`); more training is the wall seconds since the 2,200-update run.", "",
        "| `max_steps` | more training | tokens/s | validation nats per byte | training loss "
        "at the end |",
        "|---|---:|---:|---:|---:|", *rows11, "",
        f"Over the {end['steps'] - base['steps']:,} extra updates the training loss fell "
        f"{fell_train:.2f} nats per token and the validation loss {fell_val:.2f} (whole split; "
        f"{fell_probe:.2f} on the trainer's 8 batches).", "",
        "Best checkpoint, where it is not the last (nats per byte): "
        + ("; ".join(best) if best else "none: in every run the last evaluation was the best")
        + ".", "",
    ])  # fmt: skip


def main() -> None:
    """Train the five recipes and the two resumes, score them, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--quick", action="store_true", help=f"every run {QUICK}x shorter")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    start, load_before = time.perf_counter(), load_average()
    work = ROOT / "build" / "bench" / "cpu_recipe"
    base = load_config("cpu")
    ref = checked(base)  # with the defaults the preset leaves out
    tokenizer = prepare_tokenizer(ref["dataset"], ref["vocab_size"], work,
                                  ref["tokenizer_sample_bytes"], ref["val_fraction"])  # fmt: skip
    files = prepare_tokens(ref["dataset"], tokenizer, work, ref["val_fraction"], False)
    val_ids = np.fromfile(files.val, dtype=files.dtype).astype(np.int64)
    n_bytes = len(decode(tokenizer, val_ids[1:]).encode("utf-8"))  # the predicted tokens' text
    runs_dir = work / ("runs_quick" if args.quick else "runs")
    runs = []
    for i, (name, changes) in enumerate(RECIPES):
        cfg = {**base, **changes}
        cfg = quick(cfg) if args.quick else cfg
        run_dir = runs_dir / f"{i + 1}_{cfg['n_embd']}x{cfg['batch_size']}x{cfg['max_steps']}"
        print(f"{name}: batch {cfg['batch_size']}, lr {cfg['lr']:g}, {cfg['max_steps']} updates",
              flush=True)  # fmt: skip
        t = time.perf_counter()
        summary = train(cfg, run_dir, progress=False, work_dir=work, overwrite=True)
        runs.append({"name": name, "config": cfg, "run_dir": str(run_dir.relative_to(ROOT)),
                     **measure(run_dir, summary, time.perf_counter() - t, (val_ids, n_bytes))})  # fmt: skip
        print(f"  {runs[-1]['wall_s']:.0f} s, {runs[-1]['nats_per_byte']:.3f} nats per byte",
              flush=True)  # fmt: skip
    more_dir = Path(run_dir.parent / f"{run_dir.name}_more")
    shutil.rmtree(more_dir, ignore_errors=True)
    shutil.copytree(run_dir, more_dir)
    more = []
    for target in MORE:
        steps = max(target * cfg["max_steps"] // 2200, cfg["max_steps"] + 1)  # --quick scales it
        t = time.perf_counter()
        summary = train(None, more_dir, resume=True, progress=False, work_dir=work,
                        overrides={"max_steps": steps})  # fmt: skip
        more.append({"name": f"resumed to {steps}", "config": {"max_steps": steps},
                     **measure(more_dir, summary, time.perf_counter() - t, (val_ids, n_bytes))})  # fmt: skip
        print(f"resumed to {steps}: {more[-1]['wall_s']:.0f} s more, "
              f"{more[-1]['nats_per_byte']:.3f} nats per byte", flush=True)  # fmt: skip
    command = "GPT1_DATA_MIRROR=/work/shared/data HF_HUB_OFFLINE=1 python benchmarks/cpu_recipe.py"
    meta = {
        "date": f"{datetime.datetime.now():%Y-%m-%d %H:%M}", "cpu": cpu_name(),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "command": command + (" --quick" if args.quick else ""),
        "val_tokens": len(val_ids), "val_bytes": n_bytes, "wall_s": time.perf_counter() - start,
        "load": [load_before, load_average()], "code": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }  # fmt: skip
    out = work if args.quick else ROOT / "benchmarks" / "results"
    (out / "cpu_recipe.md").write_text(report(runs, more, meta), encoding="utf-8")
    (out / "cpu_recipe.json").write_text(json.dumps({**meta, "runs": runs, "more": more}, indent=1), encoding="utf-8")
    print(f"wrote {out / 'cpu_recipe.md'} and .json ({meta['wall_s'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
