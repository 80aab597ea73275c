"""benchmarks/finetune_study.py, the study chapter 09 prints: its cache of runs, its search of
settings on `valid`, its runs (which never hand `test` to the loop) and its cue checks."""

from __future__ import annotations

import importlib.util
import json
import random
import re
import sys
from pathlib import Path

import pytest
import torch
from training_helpers import make_corpus, one_thread  # noqa: F401 (an autouse fixture)

from gpt1_lib.finetune_loop import FINETUNE_DEFAULTS
from gpt1_lib.model import GPT, GPTConfig
from gpt1_lib.tasks import Example, Task
from gpt1_lib.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("finetune_study", ROOT / "benchmarks" / "finetune_study.py")
assert spec and spec.loader
study = importlib.util.module_from_spec(spec)
sys.modules["finetune_study"] = study
spec.loader.exec_module(study)

HEADER = {"weights_sha256": "aa", "tasks_sha256": "bb", "quick": False}


def a_run(seed: int, **fields) -> dict:
    return {"task": "t", "overrides": {"lr": 1e-3, "epochs": 3}, "seed": seed, "cap": None,
            "test": False, **fields}  # fmt: skip


# ---- the cache ------------------------------------------------------------------------------
def test_the_cache_cuts_a_torn_last_line_and_keeps_the_runs_before_it(tmp_path):
    path = tmp_path / "runs.jsonl"
    cache = study.Cache(path, HEADER, fresh=False)
    cache.add(a_run(0, valid_last=0.5))
    cache.add(a_run(1, valid_last=0.6))
    path.write_bytes(path.read_bytes()[:-9])  # killed while writing the second run
    again = study.Cache(path, HEADER, fresh=False)
    assert [r["seed"] for r in again.runs.values()] == [0]
    again.add(a_run(2, valid_last=0.7))  # appended after the cut, not onto the torn line
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == HEADER and [json.loads(x)["seed"] for x in lines[1:]] == [0, 2]


def test_the_cache_refuses_another_language_model_in_one_line_unless_fresh(tmp_path):
    path = tmp_path / "runs.jsonl"
    study.Cache(path, HEADER, fresh=False).add(a_run(0))
    other = {**HEADER, "weights_sha256": "cc"}
    with pytest.raises(study.StudyError, match="another language model .*--fresh") as err:
        study.Cache(path, other, fresh=False)
    assert "\n" not in str(err.value)
    assert study.Cache(path, other, fresh=True).runs == {}
    assert json.loads(path.read_text().splitlines()[0]) == other


def test_a_cached_run_is_found_by_task_settings_seed_cap_and_test():
    run = a_run(3)
    assert study.key(json.loads(json.dumps(run))) == study.key(run)  # survives the file
    for change in ({"seed": 4}, {"cap": 300}, {"test": True}, {"task": "u"},
                   {"overrides": {"lr": 1e-3, "epochs": 6}}):  # fmt: skip
        assert study.key({**run, **change}) != study.key(run)
    assert study.key({**run, "overrides": {"epochs": 3, "lr": 1e-3}}) == study.key(run)


# ---- the search -----------------------------------------------------------------------------
class FakeStudy:
    """Scores a setting by a known function: the search must find its best, on valid."""

    def __init__(self, score):
        self.score, self.jobs = score, []

    def run(self, jobs):
        self.jobs += jobs
        runs = []
        for j in jobs:
            s = self.score(j["overrides"]["lr"], j["overrides"]["epochs"], j["cap"])
            runs.append({**j, "valid_last": s, "valid_best": s + 0.1, "valid_accuracies": [s],
                         "valid_pred_last": "1", "valid_pred_best": "1"})  # fmt: skip
        return runs


@pytest.fixture
def one_task(monkeypatch):
    splits = {"train": [Example(0, "x")] * 1000, "valid": [], "test": []}
    task = Task("t", "classification", ("no", "yes"), splits, "a task of 1000 training examples")
    monkeypatch.setitem(study._state, "tasks", {"t": task})
    monkeypatch.setattr(study, "CONFIG", study.FULL)


def test_the_search_grows_an_axis_whose_best_is_its_edge_and_runs_each_setting_once(one_task):
    def score(lr, epochs, cap):  # best at lr 4e-2 (beyond the grid), 12 epochs, all examples
        return -abs(lr - 4e-2) - abs(epochs - 12) / 100 + (0.01 if cap is None else 0)

    fake = FakeStudy(score)
    found = study.search(fake, ["t"], [0, 1])
    assert found["chosen"] == {"lr": 4e-2, "epochs": 12, "cap": None}
    assert found["grid"]["lr"] == [6.25e-5, 6.25e-4, 2.5e-3, 1e-2, 4e-2]  # 1.6e-1: over the limit
    assert found["grid"]["epochs"] == [1, 2, 3, 6, 12, 24]  # 12 was the edge: 24 tried, and worse
    settings = [(p["lr"], p["epochs"], p["cap"]) for p in found["search"]]
    assert len(settings) == len(set(settings))  # each setting run once
    assert len(fake.jobs) == 2 * len(settings)  # every seed of every setting, nothing more
    assert settings[0] == (6.25e-5, 3, 600)  # GPT-1's setting first
    assert found["search"][-1]["pass"] == found["passes"] >= 2  # the last pass changed nothing
    assert all(not j["test"] for j in fake.jobs)  # the sweep never scores test
    row = found["rows"][json.dumps([4e-2, 12, None])]
    assert row["mean_valid"] == pytest.approx(0.01) and row["mean_best_of_epochs"] > row["mean_valid"]


def test_the_search_scores_the_last_epoch_not_the_best_of_epochs(one_task):
    def score(lr, epochs, cap):  # the last epoch favours 3 epochs...
        return 1.0 if epochs == 3 else 0.5

    class BestFavoursMore(FakeStudy):  # ...while the best of epochs favours more of them
        def run(self, jobs):
            return [{**r, "valid_best": r["overrides"]["epochs"]} for r in super().run(jobs)]

    assert study.search(BestFavoursMore(score), ["t"], [0])["chosen"]["epochs"] == 3


# ---- a run ----------------------------------------------------------------------------------
@pytest.fixture
def tiny_world(monkeypatch, tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt", n_lines=300)
    tok = train_tokenizer(corpus, 300)
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=300, n_ctx=32, n_embd=32, n_layer=2, n_head=2, dropout=0.0))
    rng = random.Random(0)
    words = ["king", "queen", "sword", "field", "horse", "night"]

    def example(i: int) -> Example:
        line = [rng.choice(words) for _ in range(4)] + (["crown"] if i % 2 else [])
        return Example(i % 2, " ".join(line))

    splits = {"train": [example(i) for i in range(64)], "valid": [example(i) for i in range(24)],
              "test": [example(i) for i in range(20)]}  # fmt: skip
    task = Task("crown", "classification", ("no", "yes"), splits, "crown or not")
    monkeypatch.setattr(study, "_state", {"lm": gpt, "tok": tok, "tasks": {"crown": task}})
    return task


def test_a_study_run_hands_the_loop_no_test_and_keeps_every_epochs_valid_predictions(
    tiny_world, monkeypatch
):
    seen = []
    init = study.Recorder.__init__

    def spy(self, cfg, model, data, *args, **kwargs):
        seen.append(sorted(data))
        init(self, cfg, model, data, *args, **kwargs)

    monkeypatch.setattr(study.Recorder, "__init__", spy)
    job = {"task": "crown", "overrides": {"lr": 3e-3, "epochs": 3, "batch_size": 8}, "seed": 0,
           "cap": None, "test": False}  # fmt: skip
    run = study.one_run(job)
    assert seen == [["train", "valid"]] and "test_pred" not in run
    labels = "".join(str(e.label) for e in tiny_world.splits["valid"])
    accs = run["valid_accuracies"]
    assert len(accs) == 3 and run["valid_last"] == accs[-1] and run["valid_best"] == max(accs)
    last = sum(p == y for p, y in zip(run["valid_pred_last"], labels)) / len(labels)
    best = sum(p == y for p, y in zip(run["valid_pred_best"], labels)) / len(labels)
    assert last == pytest.approx(accs[-1]) and best == pytest.approx(max(accs))
    tested = study.one_run({**job, "test": True})  # the same run, then its kept weights on test
    assert seen[-1] == ["train", "valid"] and len(tested["test_pred"]) == 20
    assert tested["valid_accuracies"] == accs


# ---- the cue checks -------------------------------------------------------------------------
def test_word_order_and_bigram_cues_see_a_shuffle_that_surface_features_cannot():
    rng = random.Random(0)
    nouns, verbs = ["the king", "the queen", "my lord", "thy son"], ["speaks", "weeps", "rides"]

    def example(i: int) -> Example:
        words = f"{rng.choice(nouns)} {rng.choice(verbs)} to the {rng.choice(['field', 'court'])}".split()
        while i % 2 == 0 and words[-1] in ("field", "court"):  # a shuffle: the words, not the order
            rng.shuffle(words)
        return Example(i % 2, " ".join(words).capitalize() + ".")

    splits = {s: [example(i) for i in range(n)] for s, n in (("train", 200), ("valid", 0), ("test", 100))}
    cues, kinds, correct, train = study.cue_checks({"s": Task("s", "classification", ("shuffled", "real"), splits, "")})
    assert set(train["s"]) == set(cues["s"]) and train["s"][study.BIGRAM] >= 0.9  # out-of-fold, still right
    assert all(len(c) == len(splits["test"]) and c.count("1") / len(c) == cues["s"][f] for f, c in correct["s"].items())
    assert cues["s"]["characters"] <= 0.65 and cues["s"]["words"] <= 0.65  # the same words
    assert cues["s"][study.BIGRAM] >= 0.9 and kinds[study.BIGRAM] == "a language model of sorts"
    assert cues["s"]["function word at the end"] >= 0.6


def test_the_cache_is_keyed_by_the_weights_not_the_file(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=32, n_ctx=8, n_embd=8, n_layer=1, n_head=2))
    twin = GPT(model.config)
    twin.load_state_dict(model.state_dict())
    assert study.weights_sha256(model) == study.weights_sha256(twin)  # another file, the same key
    with torch.no_grad():
        twin.tokens_embed.weight[0, 0] += 1e-3
    assert study.weights_sha256(model) != study.weights_sha256(twin)


def test_the_recipe_quoted_elsewhere_is_the_one_the_study_chose():
    """Chapter 09 §7, appendix A4's command line and the README's example pass the recipe's
    rate (and epochs): when the study chooses another, they must follow."""
    recipe = json.loads((ROOT / "benchmarks" / "results" / "finetune_study.json").read_text())["recipe"]
    a4 = (ROOT / "notebooks" / "A4_running_for_real.ipynb").read_text(encoding="utf-8")
    ch09 = (ROOT / "notebooks" / "09_finetuning.ipynb").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = re.search(r"--task next_line --out-dir runs/ft (--set .*?)#", readme)
    assert example, "README's fine-tuning example is gone"
    sets = dict(re.findall(r"--set (\w+)=(\S+)", example.group(1)))
    assert float(re.search(r"RECIPE_LR = ([\d.e-]+)", a4).group(1)) == recipe["lr"]
    assert float(re.search(r'finetune_config\(\{\\"lr\\": ([\d.e-]+)', ch09).group(1)) == recipe["lr"]
    assert float(sets["lr"]) == recipe["lr"]
    assert int(sets.get("epochs", FINETUNE_DEFAULTS["epochs"])) == recipe["epochs"]
