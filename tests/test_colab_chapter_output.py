"""Chapter 08's committed output is a real demonstration run: the plan printed before the first
update covers the whole run, and the training it planned follows (a leftover finished run in the
chapter's run folder once made both say "0 updates to go" and "0.0 min of training")."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "08_train_gpt1.ipynb"


def committed_output(needle: str) -> str:
    """The committed stream and text outputs of the one code cell whose source holds `needle`."""
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"]
             if c["cell_type"] == "code" and needle in "".join(c["source"])]  # fmt: skip
    assert len(cells) == 1, f"{needle!r}: {len(cells)} cells"
    parts = []
    for out in cells[0].get("outputs", []):
        parts.append("".join(out.get("text", "")))
        parts += ["".join(v) for k, v in out.get("data", {}).items() if k == "text/plain"]
    return "".join(parts)


def test_the_committed_plan_covers_the_whole_run_and_the_training_follows():
    plan = committed_output("plan_run(")
    planned = re.search(r"([\d,]+) updates to go of ([\d,]+)", plan)
    assert planned, plan
    to_go, total = (int(n.replace(",", "")) for n in planned.groups())
    assert to_go == total > 0, f"the plan was made for a run already done: {planned[0]}"
    training = committed_output("show_sample(run_dir)")
    slices = [(int(a), int(b), float(v)) for a, b, v in
              re.findall(r"^step (\d+)/(\d+): val loss ([\d.]+)", training, re.M)]  # fmt: skip
    assert slices, f"no slice of training was printed:\n{training}"
    assert slices[-1][:2] == (total, total) and re.search(rf"^done: {total} updates", training, re.M)
    assert "  sample: " in training  # each slice ends with a sample


def test_the_committed_curves_come_from_the_run_that_trained_above():
    training = committed_output("show_sample(run_dir)")
    last = [float(v) for v in re.findall(r"^step \d+/\d+: val loss ([\d.]+)", training, re.M)]
    best = re.search(r"best validation loss ([\d.]+)", committed_output("records = read_metrics"))
    assert last and best and float(best[1]) <= min(last) + 5e-4


def chapter_helpers(**names) -> dict:
    """Chapter 08's `mirror` and `drive_room`, run from the notebook's own cell, with the names
    earlier cells define (`drive_home`: the book's folder on Drive, None off Colab)."""
    cell = committed_cell_source("def drive_room(")
    namespace = {"os": os, "Path": Path, **names}
    exec(compile(cell, "08_train_gpt1.ipynb", "exec"), namespace)
    return namespace


def committed_cell_source(needle: str) -> str:
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"]
             if c["cell_type"] == "code" and needle in "".join(c["source"])]  # fmt: skip
    assert len(cells) == 1, f"{needle!r}: {len(cells)} cells"
    return "".join(cells[0]["source"])


def test_mirror_counts_for_the_trash_only_the_copies_it_replaced_or_deleted(tmp_path):
    """Drive's Trash keeps what a copy replaces or a prune deletes, not the first copy of a file:
    the chapter's Trash line once counted every byte copied."""
    mirror = chapter_helpers(drive_home=None)["mirror"]
    src, dest = tmp_path / "run", tmp_path / "drive"
    (src / "tokens").mkdir(parents=True)
    (src / "ckpt_last.pt").write_bytes(b"x" * 100)
    (src / "tokens" / "a.bin").write_bytes(b"y" * 10)
    assert mirror(src, dest, prune="tokens") == (110, 0)  # first copies replace nothing
    assert mirror(src, dest, prune="tokens") == (0, 0)  # the same versions: nothing copied
    (src / "ckpt_last.pt").write_bytes(b"z" * 120)
    os.utime(src / "ckpt_last.pt", ns=(1, 1))
    (src / "tokens" / "a.bin").unlink()
    assert mirror(src, dest, prune="tokens") == (120, 100 + 10)  # replaced 100, pruned 10
    assert (dest / "ckpt_last.pt").read_bytes() == b"z" * 120 and not (dest / "tokens" / "a.bin").exists()


def test_drive_room_stops_before_a_write_that_would_not_fit(tmp_path, monkeypatch, capsys):
    drive_room = chapter_helpers(drive_home=tmp_path)["drive_room"]
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(free=1e9))
    drive_room(0.5e9, "token ids")
    assert "Google Drive: 1.0 GB free; this run writes about 0.50 GB there (token ids)" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match=r"has 1\.0 GB free and this run would write about 2\.0 GB"):
        drive_room(2e9, "checkpoints", advice=", or raise SLICE_MINUTES")
    assert chapter_helpers(drive_home=None)["drive_room"](1e18, "off Colab: no check") is None
