"""Chapter 09's fine-tuning results with their noise: seeds, choices made on `valid`, cue checks.

Hand-written benchmark. Chapter 09 fine-tunes the chapter-06 language model (the `cpu` preset's
run, `build/cpu/runs/06_training`, trained if missing) on its three Shakespeare tasks. One run
on a test split of 147-464 examples says little, so this script runs each setting with
several seeds and keeps what a statistician needs, not only the means:

1. **The sweep, on `valid` only**: GPT-1's learning rate and larger ones at GPT-1's 3 epochs,
   then 6 epochs at the best of those rates (a search one coordinate at a time), every task
   and seed at the chapter's cap of 600 training examples. The recipe (one for all three
   tasks, as GPT-1 had) is the setting with the best mean validation accuracy. No test
   accuracy from the sweep is kept (the loop scores its last weights on test; the script drops it).
2. **The comparisons**, with the chosen recipe: fine-tuned, no pre-training
   (`transfer_layers=-1`), no auxiliary LM loss (`lm_coef=0`), and Figure 2's layers
   transferred on `next_line`; each with every seed, scored once on `test`, example by example
   (so that the chapter can pair runs on the same examples and seeds).
3. **More examples**: `scrambled` and `halves` with all their training examples instead of 600,
   on `valid` and `test` (the simplest explanation of a gap to test first).
4. **Zero-shot**, example by example (deterministic: no seed), and **cue checks**: the best
   one-feature rule on surface features (length, words, capitals, punctuation), fitted on
   `train` and scored on `test`, for every task.

Runs go to memory (no run folders); two worker processes, one thread each. Writes
benchmarks/results/finetune_study.json, which chapter 09 reads and prints.

    GPT1_DATA_MIRROR=/work/shared/data HF_HUB_OFFLINE=1 python benchmarks/finetune_study.py
    python benchmarks/finetune_study.py --quick     # 2 seeds, 1 epoch, 96 examples: a try
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import multiprocessing
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpt1_lib.checkpoint import load_model  # noqa: E402
from gpt1_lib.corpus import fetch  # noqa: E402
from gpt1_lib.finetune_loop import finetune, finetune_config, prepare  # noqa: E402
from gpt1_lib.finetune_model import predict  # noqa: E402
from gpt1_lib.profiles import load_config  # noqa: E402
from gpt1_lib.shakespeare_tasks import shakespeare_tasks  # noqa: E402
from gpt1_lib.tasks import Example, Task  # noqa: E402
from gpt1_lib.tokenizer import load_tokenizer  # noqa: E402
from gpt1_lib.train import train  # noqa: E402
from gpt1_lib.zero_shot import zero_shot_correct  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "finetune_study.json"
RUN = ROOT / "build" / "cpu" / "runs" / "06_training"  # chapter 06's run of the cpu preset
CAP = 600  # the chapter's budget of training examples per task
SEEDS = 5
LRS = (6.25e-5, 6.25e-4, 2.5e-3)  # GPT-1's fine-tuning rate, ten times it, forty times it
EPOCHS = (3, 6)  # GPT-1's three, and twice that
VARIANTS = {"fine-tuned": {}, "no pre-training": {"transfer_layers": -1},
            "no auxiliary LM": {"lm_coef": 0}}  # fmt: skip
LAYERS = (0, 2)  # Figure 2's transferred blocks besides none (-1) and all (4): next_line

_state: dict[str, Any] = {}  # each worker's language model, tokenizer and tasks


def _load() -> None:
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    _state["lm"] = load_model(RUN, which="best")
    _state["tok"] = load_tokenizer(RUN / "tokenizer.json")
    _state["tasks"] = shakespeare_tasks(fetch("tinyshakespeare"))


def capped(task: Task, cap: int | None) -> Task:
    if cap is None:
        return task
    return dataclasses.replace(task, splits={**task.splits, "train": task.splits["train"][:cap]})


def one_run(job: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune once; the best validation accuracy, and with `test` the test examples'
    correctness (1 right, 0 wrong) of the weights GPT-1 would keep."""
    task = capped(_state["tasks"][job["task"]], job["cap"])
    cfg = finetune_config({**job["overrides"], "seed": job["seed"]})
    model, data, _ = prepare(_state["lm"], _state["tok"], task, cfg)
    summary = finetune(model, data, cfg, progress=False)  # ends with the best-valid weights
    result = {**job, "valid": summary["best_valid_accuracy"], "seconds": summary["seconds"]}
    if job["test"]:
        result["correct"] = (predict(model, data["test"]) == data["test"].labels).int().tolist()
    return result


# ---- cue checks: what surface features alone can do --------------------------------------------

FEATURES: dict[str, Callable[[str], float]] = {
    "characters": len,
    "words": lambda s: len(s.split()),
    "capitals": lambda s: sum(c.isupper() for c in s),
    "punctuation marks": lambda s: sum(c in ".,;:!?-'" for c in s),
    "mean word length": lambda s: len(s.replace(" ", "")) / max(1, len(s.split())),
    "ends with punctuation": lambda s: float(bool(re.search(r"[.,;:!?-]$", s.strip()))),
    "capitalised word after a comma": lambda s: len(re.findall(r", [A-Z]", s)),
}


def _feature(task: Task, example: Example, feature: Callable[[str], float]) -> float:
    """One number per example; per choice for multiple choice (the rule compares choices)."""
    if task.kind == "entailment":  # the second half against the first
        return feature(example.text_b or "") - feature(example.text)
    return feature(example.text)


def cue_accuracy(task: Task, feature: Callable[[str], float]) -> float:
    """Test accuracy of the best rule on one feature, fitted on `train`: for multiple choice,
    "the choice with the larger (or smaller) value"; else "class 1 iff value >= t" (or <=)."""
    train, test = task.splits["train"], task.splits["test"]
    if task.kind == "multiple_choice":

        def right(sign: int, examples: list[Example]) -> int:
            picks = [max(range(len(e.choices)), key=lambda i: sign * feature(e.choices[i]))
                     for e in examples]  # fmt: skip
            return sum(p == e.label for p, e in zip(picks, examples))

        sign = max((1, -1), key=lambda s: right(s, train))
        return right(sign, test) / len(test)
    values = {id(e): _feature(task, e, feature) for e in train + test}

    def hits(sign: int, t: float, examples: list[Example]) -> int:
        return sum((sign * values[id(e)] >= sign * t) == bool(e.label) for e in examples)

    rules = [(sign, t) for t in sorted({values[id(e)] for e in train}) for sign in (1, -1)]
    sign, t = max(rules, key=lambda rule: hits(*rule, train))
    return hits(sign, t, test) / len(test)


# ---- the study -------------------------------------------------------------------------------


def jobs_for(tasks: list[str], overrides: dict[str, Any], seeds: list[int], cap: int | None,
             test: bool, **labels: Any) -> list[dict[str, Any]]:  # fmt: skip
    return [{"task": t, "overrides": overrides, "seed": s, "cap": cap, "test": test, **labels}
            for t in tasks for s in seeds]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 1 epoch, 96 examples")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if not (RUN / "ckpt_best.pt").is_file():
        print(f"no chapter-06 model in {RUN}: training it, as chapter 06 does ...", flush=True)
        train("cpu", RUN, resume=True, work_dir=RUN.parent.parent, progress=False)
    _load()
    names = list(_state["tasks"])
    seeds = list(range(2 if args.quick else SEEDS))
    cap = 96 if args.quick else CAP
    epochs = (1, 2) if args.quick else EPOCHS
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"), initializer=_load)

    def run_all(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        done = list(pool.map(one_run, jobs))
        print(f"  {len(jobs)} runs, {time.perf_counter() - started:.0f} s so far", flush=True)
        return done

    print("sweep on valid", flush=True)
    sweep: list[dict[str, Any]] = []

    def try_setting(lr: float, n: int) -> None:
        runs = run_all(jobs_for(names, {"lr": lr, "epochs": n}, seeds, cap, False))
        valid = {t: [r["valid"] for r in runs if r["task"] == t] for t in names}
        mean = sum(map(sum, valid.values())) / sum(map(len, valid.values()))
        sweep.append({"lr": lr, "epochs": n, "valid": valid, "mean_valid": mean})

    for lr in LRS:  # the learning rate at GPT-1's epochs, then more epochs at the best rate
        try_setting(lr, epochs[0])
    for n in epochs[1:]:
        try_setting(max(sweep, key=lambda row: row["mean_valid"])["lr"], n)
    chosen = max(sweep, key=lambda row: row["mean_valid"])
    recipe = {"lr": chosen["lr"], "epochs": chosen["epochs"]}
    print(f"chosen on valid: {recipe}", flush=True)

    def correct(runs: list[dict[str, Any]], task: str) -> dict[str, Any]:
        mine = sorted((r for r in runs if r["task"] == task), key=lambda r: r["seed"])
        return {"seeds": [r["seed"] for r in mine], "valid": [r["valid"] for r in mine],
                "correct": [r["correct"] for r in mine]}  # fmt: skip

    comparisons: dict[str, dict[str, Any]] = {t: {} for t in names}
    for variant, overrides in VARIANTS.items():
        runs = run_all(jobs_for(names, {**recipe, **overrides}, seeds, cap, True))
        for t in names:
            comparisons[t][variant] = correct(runs, t)
    layers = {-1: comparisons["next_line"]["no pre-training"]}
    for k in LAYERS:
        layers[k] = correct(run_all(jobs_for(["next_line"], {**recipe, "transfer_layers": k},
                                             seeds, cap, True)), "next_line")  # fmt: skip
    layers[load_config("cpu")["n_layer"]] = comparisons["next_line"]["fine-tuned"]
    more = {}
    for t in ("scrambled", "halves"):
        more[t] = correct(run_all(jobs_for([t], recipe, seeds, None, True)), t)
    pool.shutdown()
    tasks = _state["tasks"]
    result = {
        "written": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "language_model": str(RUN.relative_to(ROOT)),
        "quick": args.quick, "cap": cap, "seeds": seeds, "sweep": sweep, "recipe": recipe,
        "tasks": {t: {"kind": task.kind, "chance": task.chance, "train": len(task.splits["train"]),
                      "valid": len(task.splits["valid"]), "test": len(task.splits["test"])}
                  for t, task in tasks.items()},
        "zero_shot": {t: zero_shot_correct(_state["lm"], _state["tok"], task).int().tolist()
                      for t, task in tasks.items()},
        "comparisons": comparisons,
        "layers": {str(k): v for k, v in sorted(layers.items())},
        "all_examples": more,
        "cues": {t: {name: cue_accuracy(task, f) for name, f in FEATURES.items()}
                 for t, task in tasks.items()},
        "seconds": time.perf_counter() - started,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, separators=(",", ":")) + "\n")
    print(f"wrote {args.out} in {result['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
