"""Chapter 09's fine-tuning results with their noise: seeds, choices made on `valid`, cue checks.

Hand-written benchmark. Chapter 09 fine-tunes the chapter-06 language model (the `cpu` preset's
run, `build/cpu/runs/06_training`, trained if missing) on its three Shakespeare tasks. One run
on a test split of 147-464 examples says little, so every setting runs with 5 seeds (0-4, the
same seeds everywhere, so runs pair by seed and by example), and the script keeps what a
statistician needs, not only the means:

1. **The sweep, on `valid` only** (the test split is not even handed to the loop): coordinate
   ascent from GPT-1's setting (lr 6.25e-5, 3 epochs, 600 examples) over FULL's grid of lr,
   epochs (fewer than GPT-1's three too) and the example cap (None: all). Each pass tries every value of each axis
   holding the others (all three tasks, all seeds) and moves to the best; the passes repeat
   until one changes nothing. A best lr or epochs at the top of its grid grows the grid (lr x4,
   epochs x2, up to LIMITS). A setting's score is the mean over tasks and seeds of the LAST
   evaluation's validation accuracy: the best of the epochs would favour more epochs (more
   tries); it is kept too. One recipe for all three tasks, as GPT-1 had.
2. **Zero-shot** on `valid` and `test`, example by example (deterministic: no seed), so the
   gap between fine-tuning and zero-shot can be paired on `valid` for every sweep setting.
3. **The comparisons at the recipe**, each scored once on `test` with GPT-1's best-validation
   weights: fine-tuned, no pre-training (`transfer_layers=-1`), no auxiliary LM (`lm_coef=0`);
   Figure 2's blocks transferred on `next_line` (-1, 0, 2, all); and the simple explanations of a
   gap: all training examples instead of the recipe's cap (when it is not all already), and each
   cheap task's own best setting on `valid` where it is not the recipe.
4. **Cue checks**, fitted on `train` and scored once on `test`: the best one-feature rule on
   surface features (every task), word order (`scrambled`), the context (`next_line`), and a
   word-bigram model fitted on train's real texts, labelled as what it is: a language model of
   sorts (its train scores are out-of-fold, so the rule's threshold is not fitted on texts the
   model has seen).

Every finished run is one line of CACHE/runs.jsonl (the first line names the sha256 of the
language model's weights and of the tasks); a restart skips the runs there, so the study can be stopped
and resumed at any time (`--fresh` starts over). Two worker processes, one thread each, cheap
runs first. The result is written once, at the end, atomically.

    GPT1_DATA_MIRROR=/work/shared/data HF_HUB_OFFLINE=1 nice -n 19 python benchmarks/finetune_study.py
    python benchmarks/finetune_study.py --quick --out /tmp/q.json   # a try: 2 seeds, 128 examples

The JSON (predictions and correctness are strings of digits, one per example, in split order;
every per-seed list is in the order of `seeds`; accuracies are fractions):
  written, language_model, weights_sha256, quick, seeds, seconds (this invocation's),
  run_seconds (the sum of every cached run's time, one core each)
  tasks[t]: kind, chance, train, valid, test (sizes), labels {valid, test} (digits)
  grid {lr, epochs, cap}: the values tried (grown ones included); start; limits
  search: [{pass, axis, lr, epochs, cap, score}] every setting in the order first run;
  passes; at_edge {axis: bool}: the chosen value is the grid's largest (or smallest)
  sweep: [{lr, epochs, cap, valid {t: [last-epoch valid per seed]}, mean_valid (the score),
    best_of_epochs {t: [...]}, mean_best_of_epochs, valid_accuracies {t: [[every epoch] per seed]},
    valid_pred_last {t: [digits per seed]}, valid_pred_best {t: [...]} (the kept weights')}]
  recipe {lr, epochs} (as chapter 09 reads it); cap: the recipe's cap (None: all);
  chosen {lr, epochs, cap}
  zero_shot[t]: [0/1 per test example]; zero_shot_valid[t]: [0/1 per valid example];
  zero_shot_predictions[t] {valid, test}
  comparisons[t][variant] (fine-tuned, no pre-training, no auxiliary LM), layers["-1"|"0"|...]
  (next_line), all_examples[t] (only if the recipe's cap is not all), own_best[t] (a cheap task
  whose own best setting on valid is not the recipe): each {setting, cap, seeds, valid (best
  epoch's, per seed), valid_last, correct [[0/1 per test example] per seed], predictions
  [digits per seed], valid_predictions,
  valid_accuracies [[every epoch] per seed], collapsed [bool per seed: one class on test]}
  rerun_same: the recipe's test runs had the sweep's validation accuracies (runs are exact)
  collapsed: [{where, task, seed, split, weights}] every run that predicts a single class
  cues[t][feature]: test accuracy of the rule; cue_correct[t][feature]: its 0/1 per test example
  (digits); cue_train[t][feature]: its accuracy on train, where it was fitted (what chooses a
  task's strongest rule); cue_kinds[feature]: surface, word order, context,
  or a language model of sorts
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import multiprocessing
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpt1_lib.atomic import write_text_atomically  # noqa: E402
from gpt1_lib.checkpoint import load_model  # noqa: E402
from gpt1_lib.corpus import fetch  # noqa: E402
from gpt1_lib.finetune import weights_sha256  # noqa: E402
from gpt1_lib.finetune_loop import FineTuner, finetune_config, prepare  # noqa: E402
from gpt1_lib.finetune_model import predict  # noqa: E402
from gpt1_lib.profiles import load_config  # noqa: E402
from gpt1_lib.shakespeare_tasks import shakespeare_tasks  # noqa: E402
from gpt1_lib.tasks import Example, Task  # noqa: E402
from gpt1_lib.tokenizer import load_tokenizer  # noqa: E402
from gpt1_lib.train import train  # noqa: E402
from gpt1_lib.zero_shot import zero_shot_correct  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "finetune_study.json"
RUN = ROOT / "build" / "cpu" / "runs" / "06_training"  # chapter 06's run of the cpu preset
CACHE = ROOT / "build" / "finetune_study"
FULL: dict[str, Any] = {"seeds": 5, "grid": {"lr": [6.25e-5, 6.25e-4, 2.5e-3, 1e-2], "epochs": [1, 2, 3, 6, 12],
                             "cap": [300, 600, None]},
        "start": {"lr": 6.25e-5, "epochs": 3, "cap": 600}, "limits": {"lr": 4e-2, "epochs": 24},
        "train": None}  # fmt: skip
QUICK: dict[str, Any] = {"seeds": 2, "grid": {"lr": [6.25e-5, 2.5e-3], "epochs": [1], "cap": [64, None]},
         "start": {"lr": 6.25e-5, "epochs": 1, "cap": 64}, "limits": {"lr": 1e-2, "epochs": 2},
         "train": 128}  # fmt: skip  (every task's train cut to 128 examples: "all" is 128)
GROW = {"lr": 4, "epochs": 2}
VARIANTS = {"fine-tuned": {}, "no pre-training": {"transfer_layers": -1},
            "no auxiliary LM": {"lm_coef": 0}}  # fmt: skip
LAYERS = (0, 2)  # Figure 2's blocks besides none (-1) and all: on next_line
CHEAP = ("scrambled", "halves")  # ~5 s a run, next_line ~41 s: own-best runs for these only
COST = {"next_line": 7.0}  # a run's cost per example-epoch, relative to the others (measured)

_state: dict[str, Any] = {}  # each process's language model, tokenizer and tasks


def _load(train_cut: int | None) -> None:
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    _state["lm"] = load_model(RUN, which="best")
    _state["tok"] = load_tokenizer(RUN / "tokenizer.json")
    tasks = shakespeare_tasks(fetch("tinyshakespeare"))
    _state["tasks"] = {n: capped(t, train_cut) for n, t in tasks.items()}


def capped(task: Task, cap: int | None) -> Task:
    if cap is None:
        return task
    return dataclasses.replace(task, splits={**task.splits, "train": task.splits["train"][:cap]})


def digits(values: torch.Tensor) -> str:
    return "".join(str(int(v)) for v in values.tolist())


class Recorder(FineTuner):
    """The loop, keeping every evaluation's validation predictions: the last weights' and the
    best's, example by example, at no extra cost."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.predictions: list[torch.Tensor] = []

    def evaluate(self) -> float:
        preds = predict(self.task_model, self.data["valid"])
        self.predictions.append(preds)
        score = (preds == self.data["valid"].labels).float().mean().item()
        self.valid_accuracies.append(score)
        return score


def one_run(job: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune once on train, scored on valid at every epoch; the loop never sees test. With
    job["test"], the kept (best-validation) weights then predict test, once."""
    task = capped(_state["tasks"][job["task"]], job["cap"])
    cfg = finetune_config({**job["overrides"], "seed": job["seed"]})
    model, data, _ = prepare(_state["lm"], _state["tok"], task, cfg)
    tuner = Recorder(cfg, model, {"train": data["train"], "valid": data["valid"]}, progress=False)
    summary = tuner.fit()
    accs = summary["valid_accuracies"]
    best = accs.index(max(accs))  # the first best, as the loop keeps it
    result = {**job, "valid_accuracies": accs, "valid_last": accs[-1], "valid_best": accs[best],
              "valid_pred_last": digits(tuner.predictions[-1]),
              "valid_pred_best": digits(tuner.predictions[best]),
              "seconds": summary["seconds"], "steps": summary["steps"]}  # fmt: skip
    if job["test"]:
        result["test_pred"] = digits(predict(model, data["test"]))
    return result


# ---- cue checks: what a task's surface, word order or context can tell without the model ------

Relation = Callable[[str, str], float]  # (context, text) -> a number; context "" if none
SURFACE: dict[str, Callable[[str], float]] = {
    "characters": len,
    "words": lambda s: len(s.split()),
    "capitals": lambda s: sum(c.isupper() for c in s),
    "punctuation marks": lambda s: sum(c in ".,;:!?-'" for c in s),
    "mean word length": lambda s: len(s.replace(" ", "")) / max(1, len(s.split())),
    "ends with punctuation": lambda s: float(bool(re.search(r"[.,;:!?-]$", s.strip()))),
    "capitalised word after a comma": lambda s: len(re.findall(r", [A-Z]", s)),
}
FUNCTION_WORDS = set("the a an of and to in on at by for with from my his her thy your our their "
                     "its this that these those is be but or nor as if than so not no".split())  # fmt: skip


def _words(s: str) -> list[str]:
    return [w.strip(".,;:!?-'").lower() for w in s.split() if w.strip(".,;:!?-'")]


WORD_ORDER: dict[str, Relation] = {  # a shuffle keeps the words and the end mark, not their order
    "lower-case word after a full stop": lambda _, s: len(re.findall(r"[.!?] +[a-z]", s)),
    "function word at the end": lambda _, s: float(bool(_words(s)) and _words(s)[-1] in FUNCTION_WORDS),
    "first comma's place in the line": lambda _, s: s.find(",") / len(s) if "," in s else 1.0,
}
CONTEXT: dict[str, Relation] = {  # a choice against the lines before it
    "words shared with the context": lambda c, s: len(set(_words(s)) & set(_words(c))),
    "length difference to the context's last line":
        lambda c, s: abs(len(s) - len(c.splitlines()[-1] if c else "")),
    "opening fits the context's end (capital after . ! ?)":
        lambda c, s: float(bool(re.search(r"[.!?]$", c.strip())) == s[:1].isupper()),
}
BIGRAM = "word-bigram score (a language model of sorts, fitted on train)"


def _tokens(s: str) -> list[str]:
    return [t for line in s.lower().split("\n") for t in [*re.findall(r"[a-z']+|[.,;:!?-]", line), "<nl>"]]


class Bigram:
    """Word bigrams with interpolated smoothing, P(w | v) = (c(v, w) + 2 P(w)) / (c(v) + 2),
    P(w) add-one over the words seen: a language model of sorts, no neural network."""

    def __init__(self, texts: list[str]) -> None:
        self.pairs: Counter = Counter()
        self.firsts: Counter = Counter()
        self.words: Counter = Counter()
        for text in texts:
            toks = ["<s>", *_tokens(text)]
            self.words.update(toks[1:])
            self.pairs.update(zip(toks, toks[1:]))
            self.firsts.update(toks[:-1])
        self.n = sum(self.words.values()) + len(self.words) + 1

    def score(self, context: str, text: str, sep: str) -> float:
        """The mean log-probability of the tokens of `text` after those of `context` + `sep`."""
        head = ["<s>", *(_tokens(context)[:-1] if context else [])]
        toks = ["<s>", *_tokens(context + sep + text if context else text)]
        logp = [math.log((self.pairs[v, w] + 2 * (self.words[w] + 1) / self.n) / (self.firsts[v] + 2))
                for v, w in zip(toks[len(head) - 1 :], toks[len(head) :])]  # fmt: skip
        return sum(logp) / len(logp)


def _parts(task: Task, e: Example) -> list[tuple[str, str]]:
    """(context, text) of each thing a rule scores: every choice, or the one text, or the pair."""
    if task.kind == "multiple_choice":
        return [(e.text, c) for c in e.choices]
    return [(e.text, e.text_b or "")] if task.kind == "entailment" else [("", e.text)]


def _true_text(task: Task, e: Example) -> str | None:
    """The real text of an example, for the bigram model to learn from (None: not a real one)."""
    if task.kind == "multiple_choice":
        return e.text + "\n" + e.choices[e.label]
    if e.label != 1:
        return None
    return e.text + " " + (e.text_b or "") if task.kind == "entailment" else e.text


def rule_correct(task: Task, train: list, test: list) -> tuple[float, list[int]]:
    """The best one-feature rule fitted on train's values: its train accuracy (what a rule is
    chosen by) and whether it gets each test example right (example by example, so a model's
    answers can be split by the rule's). For multiple choice "the choice with the larger (or
    smaller) value"; else "class 1 iff value >= t" (or <=)."""
    tr, te = task.splits["train"], task.splits["test"]
    if task.kind == "multiple_choice":

        def right(sign: int, values: list, examples: list[Example]) -> list[int]:
            picks = [max(range(len(v)), key=lambda i: sign * v[i]) for v in values]
            return [int(p == e.label) for p, e in zip(picks, examples)]

        sign = max((1, -1), key=lambda s: sum(right(s, train, tr)))
        return sum(right(sign, train, tr)) / len(tr), right(sign, test, te)

    def hits(sign: int, t: float, values: list, examples: list[Example]) -> list[int]:
        return [int((sign * v[0] >= sign * t) == bool(e.label)) for v, e in zip(values, examples)]

    rules = [(sign, t) for t in sorted({v[0] for v in train}) for sign in (1, -1)]
    sign, t = max(rules, key=lambda rule: sum(hits(rule[0], rule[1], train, tr)))
    return sum(hits(sign, t, train, tr)) / len(tr), hits(sign, t, test, te)


def _surface(kind: str, feature: Callable[[str], float]) -> Relation:
    if kind == "entailment":  # the second half against the first
        return lambda c, s: feature(s) - feature(c)
    return lambda _, s: feature(s)


def cue_checks(tasks: dict[str, Task], folds: int = 5) -> tuple[dict, dict[str, str], dict, dict]:
    """Each task's rules: surface features (for a pair, the second half's minus the first's),
    word order (`classification`), the context (`multiple_choice`), and the bigram model fitted
    on train's real texts (train scored out-of-fold, test by the model of all of train)."""
    kinds = {**dict.fromkeys(SURFACE, "surface"), **dict.fromkeys(WORD_ORDER, "word order"),
             **dict.fromkeys(CONTEXT, "context"), BIGRAM: "a language model of sorts"}  # fmt: skip
    fitted: dict[str, dict[str, tuple[float, list[int]]]] = {}
    for name, task in tasks.items():
        relations = {f: _surface(task.kind, g) for f, g in SURFACE.items()}
        relations |= WORD_ORDER if task.kind == "classification" else {}
        relations |= CONTEXT if task.kind == "multiple_choice" else {}
        tr, te = task.splits["train"], task.splits["test"]
        fitted[name] = {f: rule_correct(task, [[r(c, s) for c, s in _parts(task, e)] for e in tr],
                                       [[r(c, s) for c, s in _parts(task, e)] for e in te])
                      for f, r in relations.items()}  # fmt: skip
        models = [Bigram([t for i, e in enumerate(tr) if i % folds != k and (t := _true_text(task, e))])
                  for k in range(folds)]  # fmt: skip
        full = Bigram([t for e in tr if (t := _true_text(task, e))])
        sep = "\n" if task.kind == "multiple_choice" else " "
        train_values = [[models[i % folds].score(c, s, sep) for c, s in _parts(task, e)]
                        for i, e in enumerate(tr)]  # fmt: skip
        test_values = [[full.score(c, s, sep) for c, s in _parts(task, e)] for e in te]
        fitted[name][BIGRAM] = rule_correct(task, train_values, test_values)
    cues = {t: {f: sum(c) / len(c) for f, (_, c) in by.items()} for t, by in fitted.items()}
    train = {t: {f: acc for f, (acc, _) in by.items()} for t, by in fitted.items()}
    return cues, kinds, {t: {f: "".join(map(str, c)) for f, (_, c) in by.items()} for t, by in fitted.items()}, train


def key(job: dict[str, Any]) -> str:
    return json.dumps([job["task"], sorted(job["overrides"].items()), job["seed"], job["cap"],
                       job["test"]])  # fmt: skip


class StudyError(Exception):
    """A study that cannot go on; the message is one line and says what to do."""


class Cache:
    """runs.jsonl: a header line, then one finished run per line, appended and fsynced one at
    a time; a torn last line (a kill mid-write) is cut off on opening."""

    def __init__(self, path: Path, header: dict[str, Any], fresh: bool) -> None:
        self.path, self.runs = path, {}
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh and path.exists():
            path.unlink()
        if not path.exists() or not path.read_bytes().strip():
            self._append(header)
            return
        raw = path.read_bytes()
        if not raw.endswith(b"\n"):
            with path.open("r+b") as f:
                f.truncate(raw.rfind(b"\n") + 1)
        lines = path.read_text(encoding="utf-8").splitlines()
        try:
            old = json.loads(lines[0])
        except (json.JSONDecodeError, IndexError):
            old = {}
        for name in ("weights_sha256", "tasks_sha256", "quick"):
            if old.get(name) != header[name]:
                what = {"weights_sha256": "language model", "tasks_sha256": "set of tasks"}.get(name, name)
                raise StudyError(f"{path} was made with another {what} ({name} "
                                 f"{old.get(name)} there, {header[name]} now): pass --fresh to "
                                 "start over, or --cache DIR for a new cache")  # fmt: skip
        for line in lines[1:]:
            try:
                run = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.runs[key(run)] = run

    def _append(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def add(self, run: dict[str, Any]) -> None:
        self.runs[key(run)] = run
        self._append(run)


class Study:
    """Runs jobs through the cache and a pool of two single-thread workers, cheapest first."""

    def __init__(self, cache: Cache, quick: bool, workers: int) -> None:
        self.cache, self.quick, self.workers = cache, quick, workers
        self.pool: ProcessPoolExecutor | None = None
        self.started, self.done = time.perf_counter(), 0

    def cost(self, job: dict[str, Any]) -> float:
        n = len(capped(_state["tasks"][job["task"]], job["cap"]).splits["train"])
        return COST.get(job["task"], 1.0) * n * job["overrides"]["epochs"]

    def run(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        todo = {key(j): j for j in jobs if key(j) not in self.cache.runs}
        if todo:
            if self.pool is None:
                context = multiprocessing.get_context("fork")
                self.pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                                initializer=_load, initargs=(CONFIG["train"],))  # fmt: skip
            ordered = sorted(todo.values(), key=self.cost)
            futures = [self.pool.submit(one_run, j) for j in ordered]
            for future in as_completed(futures):
                run = future.result()
                self.cache.add(run)
                self.done += 1
                print(f"  {time.strftime('%H:%M:%S')} {run['task']} {run['overrides']} cap "
                      f"{run['cap']} seed {run['seed']}{' +test' if run['test'] else ''}: valid "
                      f"{run['valid_accuracies']} in {run['seconds']:.0f} s", flush=True)  # fmt: skip
            print(f"  {len(todo)} new runs ({len(jobs) - len(todo)} cached); {self.done} new in "
                  f"{(time.perf_counter() - self.started) / 60:.1f} min", flush=True)  # fmt: skip
        return [self.cache.runs[key(j)] for j in jobs]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


CONFIG: dict[str, Any] = FULL


def effective_cap(task: str, cap: int | None) -> int | None:
    """A cap at or above the task's train size is all of it: the same runs, run once."""
    n = len(_state["tasks"][task].splits["train"])
    return None if cap is None or cap >= n else cap


def jobs_for(tasks: list[str], setting: dict[str, Any], seeds: list[int], test: bool,
             **overrides: Any) -> list[dict[str, Any]]:  # fmt: skip
    return [{"task": t, "overrides": {"lr": setting["lr"], "epochs": setting["epochs"],
                                      **overrides},
             "seed": s, "cap": effective_cap(t, setting["cap"]), "test": test}
            for t in tasks for s in seeds]  # fmt: skip


def sweep_row(setting: dict[str, Any], runs: list[dict[str, Any]], tasks: list[str]) -> dict:
    by = {t: [r for r in runs if r["task"] == t] for t in tasks}  # in seed order
    row: dict[str, Any] = dict(setting)
    row["valid"] = {t: [r["valid_last"] for r in rs] for t, rs in by.items()}
    row["mean_valid"] = sum(r["valid_last"] for r in runs) / len(runs)
    row["best_of_epochs"] = {t: [r["valid_best"] for r in rs] for t, rs in by.items()}
    row["mean_best_of_epochs"] = sum(r["valid_best"] for r in runs) / len(runs)
    for name in ("valid_accuracies", "valid_pred_last", "valid_pred_best"):
        row[name] = {t: [r[name] for r in rs] for t, rs in by.items()}
    return row


def search(study: Study, tasks: list[str], seeds: list[int]) -> dict[str, Any]:
    """Coordinate ascent on the mean last-epoch validation accuracy (see the docstring)."""
    grid = {axis: list(values) for axis, values in CONFIG["grid"].items()}
    rows: dict[str, dict[str, Any]] = {}
    path: list[dict[str, Any]] = []

    def name(s: dict[str, Any]) -> str:
        return json.dumps([s["lr"], s["epochs"], s["cap"]])

    def try_all(settings: list[dict[str, Any]], where: dict[str, Any]) -> None:
        new = [s for s in settings if name(s) not in rows]
        runs = study.run([j for s in new for j in jobs_for(tasks, s, seeds, False)])
        per = len(tasks) * len(seeds)
        for i, s in enumerate(new):
            rows[name(s)] = sweep_row(s, runs[i * per : (i + 1) * per], tasks)
            path.append({**where, **s, "score": rows[name(s)]["mean_valid"]})

    current, changed, passes = dict(CONFIG["start"]), True, 0
    while changed:
        passes, changed = passes + 1, False
        for axis in ("lr", "epochs", "cap"):
            while True:
                tried = [{**current, axis: v} for v in grid[axis]]
                try_all(tried, {"pass": passes, "axis": axis})
                best = max(tried, key=lambda s: rows[name(s)]["mean_valid"])
                if rows[name(best)]["mean_valid"] > rows[name(current)]["mean_valid"]:
                    current, changed = best, True
                top = max(grid[axis]) if axis in GROW else None
                if top is not None and current[axis] == top and top * GROW[axis] <= CONFIG["limits"][axis]:
                    grid[axis].append(top * GROW[axis])  # the best is at the edge: look beyond
                    continue
                break
        print(f"pass {passes}: at {current}, mean last-epoch valid "
              f"{rows[name(current)]['mean_valid']:.4f}", flush=True)  # fmt: skip
    edge = {a: current[a] in (grid[a][0], grid[a][-1]) if a != "cap" else current[a] is None
            for a in grid}  # fmt: skip
    return {"grid": grid, "search": path, "passes": passes, "at_edge": edge,
            "sweep": list(rows.values()), "chosen": current, "rows": rows}  # fmt: skip


def tested(runs: list[dict[str, Any]], setting: dict[str, Any]) -> dict[str, Any]:
    """Test runs of one task and setting, seed by seed: what the chapter pairs."""
    labels = _state["labels"][runs[0]["task"]]["test"]
    return {"setting": setting, "cap": runs[0]["cap"], "seeds": [r["seed"] for r in runs],
            "valid": [r["valid_best"] for r in runs], "valid_last": [r["valid_last"] for r in runs],
            "valid_accuracies": [r["valid_accuracies"] for r in runs],
            "correct": [[int(p == y) for p, y in zip(r["test_pred"], labels)] for r in runs],
            "predictions": [r["test_pred"] for r in runs],
            "valid_predictions": [r["valid_pred_best"] for r in runs],
            "collapsed": [len(set(r["test_pred"])) == 1 for r in runs]}  # fmt: skip


def collapsed_runs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run that predicts one class (or one choice position) for a whole split."""
    found = []
    for row in result["sweep"]:
        for weights in ("last", "best"):
            for t, preds in row[f"valid_pred_{weights}"].items():
                found += [{"where": f"sweep lr {row['lr']} epochs {row['epochs']} cap {row['cap']}",
                           "task": t, "seed": s, "split": "valid", "weights": weights}
                          for s, p in zip(result["seeds"], preds) if len(set(p)) == 1]  # fmt: skip
    groups = [(f"{v}", t, runs) for t, vs in result["comparisons"].items() for v, runs in vs.items()]
    groups += [(f"layers {k}", "next_line", runs) for k, runs in result["layers"].items()]
    for part in ("all_examples", "own_best"):
        groups += [(part, t, runs) for t, runs in result[part].items()]
    for where, t, runs in groups:
        found += [{"where": where, "task": t, "seed": s, "split": "test", "weights": "best"}
                  for s, c in zip(runs["seeds"], runs["collapsed"]) if c]  # fmt: skip
    return found


def main(argv: list[str] | None = None) -> int:
    global CONFIG
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 128 examples, 1-2 epochs")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--cache", type=Path, default=None, help=f"default {CACHE.relative_to(ROOT)}"
                        " (--quick: its quick/ folder)")  # fmt: skip
    parser.add_argument("--fresh", action="store_true", help="forget the cached runs")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    CONFIG = QUICK if args.quick else FULL
    started = time.perf_counter()
    if not (RUN / "ckpt_best.pt").is_file():
        print(f"no chapter-06 model in {RUN}: training it, as chapter 06 does ...", flush=True)
        train("cpu", RUN, resume=True, work_dir=RUN.parent.parent, progress=False)
    _load(CONFIG["train"])
    tasks: dict[str, Task] = _state["tasks"]
    names, seeds = list(tasks), list(range(CONFIG["seeds"]))
    _state["labels"] = {t: {s: "".join(str(e.label) for e in task.splits[s]) for s in ("valid", "test")}
                        for t, task in tasks.items()}  # fmt: skip
    examples = json.dumps({t: {s: [dataclasses.astuple(e) for e in x] for s, x in task.splits.items()}
                           for t, task in tasks.items()})  # fmt: skip
    header = {"checkpoint": str((RUN / "ckpt_best.pt").relative_to(ROOT)),
              "weights_sha256": weights_sha256(load_model(RUN, which="best")),
              "tasks_sha256": hashlib.sha256(examples.encode()).hexdigest(), "quick": args.quick}  # fmt: skip
    cache_dir = args.cache or (CACHE / "quick" if args.quick else CACHE)
    try:
        cache = Cache(cache_dir / "runs.jsonl", header, args.fresh)
    except StudyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(cache.runs)} runs cached in {cache.path}", flush=True)
    study = Study(cache, args.quick, args.workers)
    print("zero-shot on valid and test", flush=True)
    zero = {t: {s: zero_shot_correct(_state["lm"], _state["tok"], task, s).int().tolist()
                for s in ("valid", "test")} for t, task in tasks.items()}  # fmt: skip
    print("the sweep, on valid", flush=True)
    found = search(study, names, seeds)
    chosen = found.pop("chosen")
    rows = found.pop("rows")
    print(f"chosen on valid: {chosen}", flush=True)

    def at(setting: dict[str, Any], task_names: list[str], **overrides: Any) -> dict[str, Any]:
        runs = study.run(jobs_for(task_names, setting, seeds, True, **overrides))
        return {t: tested([r for r in runs if r["task"] == t], {**setting, **overrides})
                for t in task_names}  # fmt: skip

    comparisons: dict[str, dict[str, Any]] = {t: {} for t in names}
    for variant, overrides in VARIANTS.items():
        for t, runs in at(chosen, names, **overrides).items():
            comparisons[t][variant] = runs
    at_recipe = rows[json.dumps([chosen["lr"], chosen["epochs"], chosen["cap"]])]
    rerun_same = all(comparisons[t]["fine-tuned"]["valid_accuracies"] == at_recipe["valid_accuracies"][t]
                     for t in names)  # fmt: skip
    print(f"the recipe's runs again, scoring test: the sweep's validation accuracies: {rerun_same}")
    n_layer = load_config("cpu")["n_layer"]
    layers = {-1: comparisons["next_line"]["no pre-training"],
              n_layer: comparisons["next_line"]["fine-tuned"]}  # fmt: skip
    for k in LAYERS:
        layers[k] = at(chosen, ["next_line"], transfer_layers=k)["next_line"]
    more = {t: runs for t, runs in at({**chosen, "cap": None}, list(CHEAP)).items()
            if effective_cap(t, chosen["cap"]) is not None}  # fmt: skip
    own_best = {}
    for t in CHEAP:  # each cheap task's own best setting on valid, where the recipe is not it
        best = max(rows.values(), key=lambda row: sum(row["valid"][t]) / len(seeds))
        setting = {a: best[a] for a in ("lr", "epochs", "cap")}
        if setting != chosen:
            own_best[t] = at(setting, [t])[t]
    study.close()
    result: dict[str, Any] = {
        "written": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "language_model": str(RUN.relative_to(ROOT)), "weights_sha256": header["weights_sha256"],
        "quick": args.quick, "seeds": seeds,
        "tasks": {t: {"kind": task.kind, "chance": task.chance, "train": len(task.splits["train"]),
                      "valid": len(task.splits["valid"]), "test": len(task.splits["test"]),
                      "labels": _state["labels"][t]} for t, task in tasks.items()},
        "start": CONFIG["start"], "limits": CONFIG["limits"], **found,
        "recipe": {"lr": chosen["lr"], "epochs": chosen["epochs"]}, "cap": chosen["cap"],
        "chosen": chosen,
        "zero_shot": {t: z["test"] for t, z in zero.items()},
        "zero_shot_valid": {t: z["valid"] for t, z in zero.items()},
        "zero_shot_predictions": {t: {s: "".join(y if c else str(1 - int(y))  # two classes
                                                 for c, y in zip(z[s], _state["labels"][t][s]))
                                      for s in ("valid", "test")} for t, z in zero.items()},
        "comparisons": comparisons,
        "layers": {str(k): v for k, v in sorted(layers.items())},
        "all_examples": more, "own_best": own_best, "rerun_same": rerun_same,
    }  # fmt: skip
    result["collapsed"] = collapsed_runs(result)
    result["cues"], result["cue_kinds"], result["cue_correct"], result["cue_train"] = cue_checks(tasks)
    result["seconds"] = time.perf_counter() - started  # this invocation's: cached runs cost nothing
    result["run_seconds"] = sum(run["seconds"] for run in cache.runs.values())  # every run's, one core each
    write_text_atomically(args.out, json.dumps(result, separators=(",", ":")) + "\n")
    print(f"wrote {args.out} in {result['seconds'] / 60:.1f} min ({study.done} runs run, the "
          f"rest cached)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
