"""gpt1_lib.tasks: the offline fine-tuning tasks (chapter 09) and users' task files.

The Shakespeare tasks are checked against the text itself, re-read here without the module's
help: the validation cut pre-training uses, the speeches after it, and the position split
(first 70 % of the speeches train, next 10 % valid, last 20 % test). They need tiny shakespeare
from `GPT1_DATA_MIRROR` (CI sets it) and are skipped without it.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from gpt1_lib.corpus import fetch, holdout_start
from gpt1_lib.download import MIRROR_ENV
from gpt1_lib.shakespeare_tasks import shakespeare_tasks
from gpt1_lib.task_files import load_task
from gpt1_lib.tasks import KINDS, Example, Task, TaskError

VAL_FRACTION = 0.1  # pre-training's default: the tasks must come from after its cut


@pytest.fixture(scope="module")
def shakespeare(tmp_path_factory) -> Path:
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror or not (Path(mirror) / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip(f"needs {MIRROR_ENV} pointing at a mirror with tinyshakespeare (CI sets it)")
    return fetch("tinyshakespeare", data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def tasks(shakespeare) -> dict[str, Task]:
    return shakespeare_tasks(shakespeare, val_fraction=VAL_FRACTION, seed=0)


@pytest.fixture(scope="module")
def text(shakespeare) -> tuple[str, str]:
    """(pre-training's training text, the held-out tail), cut where pre-training cuts them."""
    data = shakespeare.read_bytes()
    cut = holdout_start(shakespeare, VAL_FRACTION)
    return data[:cut].decode(), data[cut:].decode()


@pytest.fixture(scope="module")
def split_lines(text) -> dict[str, set[str]]:
    """The stripped lines of each split's speeches (speaker names excluded), by position."""
    speeches = [b.strip().split("\n")[1:] for b in re.split(r"\n\s*\n", text[1].strip())]
    n = len(speeches)
    bounds = {"train": (0, round(0.7 * n)), "valid": (round(0.7 * n), round(0.8 * n))}
    bounds["test"] = (round(0.8 * n), n)
    return {
        s: {line.strip() for sp in speeches[a:b] for line in sp} for s, (a, b) in bounds.items()
    }


def halve(line: str) -> tuple[str, str]:
    """`line` cut at the space nearest its middle by characters (the first on a tie)."""
    spaces = [m.start() for m in re.finditer(" ", line)]
    cut = min(spaces, key=lambda i: (abs(i - (len(line) - i - 1)), i))
    return line[:cut], line[cut + 1 :]


@pytest.fixture(scope="module")
def halves_of(split_lines) -> dict[str, tuple[dict, dict]]:
    """Per split: each first half -> the lines it starts, each second half -> the lines it ends
    (lines of 6 words or more, the ones `halves` cuts)."""
    out = {}
    for split, lines in split_lines.items():
        firsts, seconds = defaultdict(set), defaultdict(set)
        for line in lines:
            if len(line.split()) >= 6:
                first, second = halve(line)
                firsts[first].add(line)
                seconds[second].add(line)
        out[split] = (dict(firsts), dict(seconds))
    return out


def lines_of(name: str, example: Example, halves_of: dict, split: str) -> list[str]:
    """The held-out lines an example is made of; for `halves`, the lines its halves come from."""
    if name == "halves":
        firsts, seconds = halves_of[split]
        assert example.text in firsts and example.text_b in seconds, (split, example)
        return sorted(firsts[example.text] | seconds[example.text_b])
    return [
        *example.text.split("\n"),
        *([example.text_b] if example.text_b else []),
        *example.choices,
    ]


def words(line: str) -> tuple[str, ...]:
    """A line's words, lower-cased and without punctuation: equal for a line and its shuffle."""
    return tuple(sorted(re.findall(r"[a-z']+", line.lower())))


def test_the_three_tasks_have_their_kinds_and_sizes(tasks):
    assert {n: t.kind for n, t in tasks.items()} == {
        "next_line": "multiple_choice",
        "scrambled": "classification",
        "halves": "entailment",
    }
    assert all(t.kind in KINDS and t.description for t in tasks.values())
    floors = {"next_line": (400, 50), "scrambled": (1000, 200), "halves": (1000, 200)}
    for name, (train, other) in floors.items():
        sizes = {s: len(e) for s, e in tasks[name].splits.items()}
        assert set(sizes) == {"train", "valid", "test"}
        assert sizes["train"] >= train and sizes["valid"] >= other and sizes["test"] >= other
    assert tasks["scrambled"].labels == ("scrambled", "as written")
    assert tasks["halves"].labels == ("other half", "same line")
    assert tasks["next_line"].labels == ("1", "2") and tasks["next_line"].n_classes == 2


def test_same_seed_same_tasks_other_seed_other_tasks(shakespeare, tasks):
    assert shakespeare_tasks(shakespeare, seed=0) == tasks
    other = shakespeare_tasks(shakespeare, seed=1)
    assert all(other[n].splits != tasks[n].splits for n in tasks)


def test_classes_are_balanced_and_chance_is_one_half(tasks):
    for task in tasks.values():
        assert task.chance == 0.5
        for split, examples in task.splits.items():
            counts = Counter(e.label for e in examples)
            if task.kind == "multiple_choice":
                assert all(len(e.choices) == 2 for e in examples)
                assert abs(counts[0] - counts[1]) <= 1, (split, counts)  # the true line's place
            else:
                assert counts[0] == counts[1], (task.name, split, counts)


def test_no_example_line_comes_from_the_training_text(tasks, text, halves_of):
    train_text, tail = text
    train_lines = {line.strip() for line in train_text.splitlines()}
    assert "Before we proceed any further, hear me speak." in train_lines  # the check can fail
    assert "\nWhat is his name?\n" in tail and "What is his name?" in train_lines  # to drop
    seen = {
        line
        for name, task in tasks.items()
        for split, examples in task.splits.items()
        for e in examples
        for line in lines_of(name, e, halves_of, split)
    }
    assert seen and not seen & train_lines
    assert [line for line in seen if line in train_text] == []  # not even inside a longer line
    assert all(len(line) <= 100 and len(line.split()) >= 3 for line in seen)
    real = {e.text for e in tasks["scrambled"].splits["test"] if e.label == 1}
    assert real and all(f"\n{line}\n" in tail for line in real)


def test_each_example_stays_in_its_split_and_splits_share_no_line(tasks, split_lines, halves_of):
    assert (
        not split_lines["train"] & split_lines["valid"]
        and not split_lines["valid"] & split_lines["test"]
    )
    keys = {s: {words(line) for line in lines} for s, lines in split_lines.items()}
    for name, task in tasks.items():
        used = {}
        for split, examples in task.splits.items():
            used[split] = {
                words(line) for e in examples for line in lines_of(name, e, halves_of, split)
            }
            assert used[split] <= keys[split], (name, split)  # scrambled ones included
        assert not used["train"] & used["valid"] and not used["train"] & used["test"]
        assert not used["valid"] & used["test"]


def test_the_right_choice_is_the_true_next_line(tasks, text):
    speeches = [f"\n{block.strip()}\n" for block in text[1].split("\n\n")]
    for examples in tasks["next_line"].splits.values():
        for e in examples:
            assert len(e.text.split("\n")) == 3 and len(set(e.choices)) == 2
            right, wrong = e.choices[e.label], e.choices[1 - e.label]
            [speech] = [s for s in speeches if f"\n{e.text}\n{right}\n" in s]
            assert f"\n{wrong}\n" not in speech  # the distractor comes from another speech
            assert any(f"\n{wrong}\n" in s for s in speeches)


def test_halves_join_back_into_their_line_and_other_halves_come_from_other_lines(
    tasks, halves_of, split_lines
):
    premises = Counter()
    for split, examples in tasks["halves"].splits.items():
        firsts, seconds = halves_of[split]
        assert len({e.text_b for e in examples}) == len(examples)  # each second half once
        for e in examples:
            premises[e.text] += 1
            line = f"{e.text} {e.text_b}"
            assert (line in split_lines[split]) == (e.label == 1), (split, e)
            if e.label == 1:
                assert halve(line) == (e.text, e.text_b) and len(line.split()) >= 6
            else:  # another line's second half, with the premise's line nowhere in it
                assert not firsts[e.text] & seconds[e.text_b], (split, e)
    assert max(premises.values()) == 1  # each line cut once, its first half used once


CUES = {  # what a glance at a pair tells, without reading it
    "second half starts with a capital": lambda e: bool(re.match(r"[^A-Za-z]*[A-Z]", e.text_b)),
    "second half ends with punctuation": lambda e: bool(re.search(r"[.,;:!?-]$", e.text_b)),
    "length of the second half": lambda e: len(e.text_b),
    "length of first half - second half": lambda e: len(e.text) - len(e.text_b),
    "words in the second half": lambda e: len(e.text_b.split()),
}


@pytest.mark.parametrize("cue", CUES)
def test_no_glance_at_the_halves_tells_the_label(tasks, cue):
    """The best rule "same line iff sign * cue >= sign * t" fitted on train scores ~50 % on test."""
    value, halves = CUES[cue], tasks["halves"].splits

    def hits(sign: int, t: float, examples: list[Example]) -> int:
        return sum((sign * value(e) >= sign * t) == e.label for e in examples)

    rules = [(sign, t) for t in sorted({value(e) for e in halves["train"]}) for sign in (1, -1)]
    sign, t = max(rules, key=lambda rule: hits(*rule, halves["train"]))
    assert hits(sign, t, halves["test"]) / len(halves["test"]) <= 0.55


def test_scrambled_lines_are_shuffles_used_once(tasks, split_lines):
    task = tasks["scrambled"]
    examples = [e for s in task.splits.values() for e in s]
    assert max(Counter(words(e.text) for e in examples).values()) == 1  # never both ways
    real_lines = set().union(*split_lines.values())
    for e in examples:
        assert (e.text in real_lines) == (e.label == 1)
    source = {words(line): line for line in real_lines}
    end = re.compile(r"[.,;:!?-]*$")
    for e in (e for e in examples if e.label == 0):  # capital first, the line's own stop last
        assert re.match(r"[^a-z]*[A-Z]", e.text), e
        assert end.search(e.text).group() == end.search(source[words(e.text)]).group(), e


def test_chance_is_the_majority_class_of_the_test_split():
    ex = [Example(0, "a"), Example(0, "b"), Example(0, "c"), Example(1, "d")]
    task = Task(
        "t", "classification", ("no", "yes"), {"train": ex[:1], "valid": [], "test": ex}, ""
    )
    assert task.chance == 0.75 and task.n_classes == 2
    mc = Example(2, "q", choices=("a", "b", "c"))
    task = Task(
        "m", "multiple_choice", ("1", "2", "3"), {"train": [mc], "valid": [], "test": [mc]}, ""
    )
    assert task.chance == pytest.approx(1 / 3) and task.n_classes == 3
    with pytest.raises(ValueError, match="unknown task kind"):
        Task("x", "regression", ("a",), {}, "")


# --- users' task files --------------------------------------------------------------------------

RECORDS = {
    "classification": [{"text": "a fine film", "label": "pos"}, {"text": "dull", "label": "neg"}],
    "entailment": [
        {"premise": "It rains.", "hypothesis": "It is wet.", "label": "entailment"},
        {"premise": "It rains.", "hypothesis": "It is dry.", "label": "contradiction"},
    ],
    "similarity": [
        {"text_a": "Hi.", "text_b": "Hello.", "label": 1},
        {"text_a": "Hi.", "text_b": "Bye.", "label": 0},
    ],
    "multiple_choice": [
        {"context": "Two and two make", "choices": ["four", "five", "six"], "label": 0},
        {"context": "The sky is", "choices": ["green", "red", "blue"], "label": 2},
    ],
}


def write(path: Path, records: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(
                {k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()}
                for r in records
            )
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_round_trips_through_jsonl_and_csv(tmp_path, kind, suffix):
    splits = ["train"] * 6 + ["valid"] * 2 + ["test"] * 2
    records = [dict(r, split=s) for r, s in zip(RECORDS[kind] * 5, splits)]
    task = load_task(write(tmp_path / f"mine{suffix}", records))
    assert task.kind == kind and task.name == "mine"
    assert {s: len(e) for s, e in task.splits.items()} == {"train": 6, "valid": 2, "test": 2}
    first = task.splits["train"][0]
    if kind == "multiple_choice":
        assert task.labels == ("1", "2", "3") and task.chance == pytest.approx(1 / 3)
        assert first == Example(0, "Two and two make", choices=("four", "five", "six"))
        assert task.splits["train"][1].label == 2
    else:
        assert len(task.labels) == 2 and task.chance == 0.5
        values = list(RECORDS[kind][0].values())
        assert task.labels[first.label] == str(values[-1])  # labels name the classes
        assert (first.text, first.text_b) == (values[0], values[1] if len(values) == 3 else "")
    if kind == "similarity":
        assert task.labels == ("0", "1")  # numeric labels keep their meaning


def test_csv_choice_columns_and_similarity_by_kind(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text(
        'context,choice_0,choice_1,label\nSky?,"blue, mostly",green,0\nGrass?,blue,green,1\n'
    )
    task = load_task(path, valid_fraction=0, test_fraction=0)
    assert task.kind == "multiple_choice"
    assert task.splits["train"] == [
        Example(0, "Sky?", choices=("blue, mostly", "green")),
        Example(1, "Grass?", choices=("blue", "green")),
    ]
    pairs = write(tmp_path / "pairs.jsonl", RECORDS["entailment"] * 5)
    assert load_task(pairs).kind == "entailment"
    assert load_task(pairs, kind="similarity").kind == "similarity"


def test_without_a_split_field_examples_are_split_by_seed(tmp_path):
    records = [{"text": f"line number {i}", "label": i % 2} for i in range(100)]
    path = write(tmp_path / "many.jsonl", records)
    task = load_task(path, valid_fraction=0.1, test_fraction=0.2, seed=3)
    assert {s: len(e) for s, e in task.splits.items()} == {"train": 70, "valid": 10, "test": 20}
    assert load_task(path, valid_fraction=0.1, test_fraction=0.2, seed=3) == task
    assert load_task(path, valid_fraction=0.1, test_fraction=0.2, seed=4) != task
    texts = [e.text for s in task.splits.values() for e in s]
    assert sorted(texts) == sorted(r["text"] for r in records)


GOOD = '{"text": "fine", "label": "pos"}\n'
ERRORS = [  # (file name, content, kind, what the message must say)
    ("empty.jsonl", b"", None, r"empty\.jsonl is empty"),
    ("header.csv", b"text,label\n", None, r"header\.csv is empty"),
    ("latin.jsonl", (GOOD + '{"text": "caf\xe9", "label": "neg"}\n').encode("latin-1"), None, r"line 2: byte 0xe9 is not UTF-8: save the file as UTF-8"),
    ("broken.jsonl", (GOOD * 2 + '{"text": "x" "label": 1}\n').encode(), None, r"line 3 is not valid JSON .*one JSON object per line"),
    ("list.jsonl", b'["fine", "pos"]\n', None, r"line 1 is not a JSON object"),
    ("missing.jsonl", b'{"text": "fine"}\n', None, r"line 1: missing fields \(it has text\): use text,label or"),
    ("mixed.jsonl", (GOOD + '{"premise": "a", "hypothesis": "b", "label": "pos"}\n').encode(), None, r"line 2 has fields hypothesis,label,premise but line 1 has label,text: give every"),
    ("range.jsonl", b'{"context": "c", "choices": ["a", "b"], "label": 0}\n{"context": "c", "choices": ["a", "b"], "label": 2}\n', None, r"line 2: label 2 is not the index of one of its 2 choices: use 0 to 1"),
    ("count.jsonl", b'{"context": "c", "choices": ["a", "b"], "label": 0}\n{"context": "c", "choices": ["a", "b", "d"], "label": 1}\n', None, r"line 2 has 3 choices but line 1 has 2"),
    ("notlist.csv", b"context,choices,label\nc,a or b,0\n", None, r"line 2: choices must be a list"),
    ("split.jsonl", b'{"text": "fine", "label": "pos", "split": "train"}\n{"text": "bad", "label": "neg", "split": "dev"}\n', None, r"line 2: unknown split 'dev': use train, valid or test"),
    ("one.jsonl", (GOOD * 3).encode(), None, r"every example has label 'pos': a task needs at least 2 classes"),
    ("blank.jsonl", (GOOD + '{"text": "  ", "label": "neg"}\n').encode(), None, r"line 2: text is empty"),
    ("cells.csv", b"text,label\nfine,pos\nfine, really,pos\n", None, r"line 3 does not have one cell per header column \(2\): quote cells"),
    ("reviews.txt", GOOD.encode(), None, r"unknown file type '\.txt': use \.jsonl or \.csv"),
    ("kind.jsonl", (GOOD + '{"text": "bad", "label": "neg"}\n').encode(), "multiple_choice", r"make a classification task, not multiple_choice"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "kind", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_task_files_say_where_and_what_to_do(tmp_path, name, content, kind, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(TaskError, match=message) as err:
        load_task(path, kind=kind)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
