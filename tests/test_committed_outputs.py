"""The committed outputs show the run, not its noise.

A reader of a notebook on GitHub or on the book's website sees its committed outputs as they
are. A progress bar committed as output is frozen where it stood when the cell ended ("0%",
which reads as a hang), and log lines a library prints on stderr (a profiler's start and stop,
say) are noise between the results. `tools/run_notebooks.py` keeps both out; this checks that
the notebooks as committed have neither. A cell may write to stderr on purpose (chapter 08's
warning that no GPU was found): its source then names `sys.stderr`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRESS_BAR = re.compile(r"\d+%\|")  # tqdm's "  0%|          | 0/2200 [00:00<?, ?step/s]"
WIDGET = "application/vnd.jupyter.widget-view+json"


def noise(notebook: dict, name: str) -> list[str]:
    """What a notebook's committed outputs hold that they should not, one line each."""
    found = []
    if "widgets" in notebook.get("metadata", {}):
        found.append(f"{name}: widget state in the notebook's metadata")
    for i, cell in enumerate(notebook["cells"]):
        source = "".join(cell["source"])
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            text = "".join(out.get("text", "")) + "".join(data.get("text/plain", ""))
            if WIDGET in data or PROGRESS_BAR.search(text):
                found.append(f"{name} cell {i}: a progress bar ({text.strip()[:60]!r})")
            elif out.get("name") == "stderr" and "sys.stderr" not in source:
                found.append(f"{name} cell {i}: output on stderr ({text.strip()[:60]!r})")
    return found


def test_no_committed_output_holds_a_progress_bar_or_noise_on_stderr():
    notebooks = sorted((ROOT / "notebooks").glob("[0-9A][0-9]_*.ipynb"))
    assert notebooks
    found = [line for nb in notebooks for line in noise(json.loads(nb.read_text()), nb.name)]
    assert not found, "noise in committed outputs (re-run with tools/run_notebooks.py):\n" + (
        "\n".join(found)
    )


def test_the_check_finds_a_frozen_bar_and_profiler_lines_but_not_a_deliberate_warning():
    def cell(source: str, *outputs: dict) -> dict:
        return {"cell_type": "code", "source": source, "outputs": list(outputs)}

    bar = {"output_type": "display_data", "data": {
        "text/plain": "training:   0%|          | 0/40 [00:00<?, ?step/s]", WIDGET: {}}}  # fmt: skip
    usdt = {"output_type": "stream", "name": "stderr", "text": "USDT: profiler_start\n"}
    warning = {"output_type": "stream", "name": "stderr", "text": "!! NO GPU\n"}
    result = {"output_type": "stream", "name": "stdout", "text": "loss 2.53, 40% of peak\n"}
    notebook = {"metadata": {}, "cells": [
        cell("train()", bar, result), cell("profile()", usdt),
        cell("print('!! NO GPU', file=sys.stderr)", warning), cell("report()", result)]}  # fmt: skip
    assert [line.split(":")[0] for line in noise(notebook, "nb")] == ["nb cell 0", "nb cell 1"]
    notebook["metadata"]["widgets"] = {}
    assert noise(notebook, "nb")[0] == "nb: widget state in the notebook's metadata"


def checked_shares(notebook: dict) -> tuple[float, float]:
    """(compared, compared or asserting) as shares of a notebook's cells with outputs.

    nbval compares a cell's output unless it is tagged `nbval-ignore-output` (or skipped); an
    ignored cell still checks its claim when its code asserts it.
    """
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code" and c.get("outputs")]
    ignored = [
        c
        for c in cells
        if {"nbval-ignore-output", "nbval-skip"} & set(c["metadata"].get("tags", []))
    ]
    asserting = [c for c in ignored if re.search(r"^\s*assert\b", "".join(c["source"]), re.M)]
    n = max(len(cells), 1)
    compared = len(cells) - len(ignored)
    return compared / n, (compared + len(asserting)) / n


def test_every_notebook_compares_or_asserts_most_of_its_outputs():
    """CONTRIBUTING's rule: at least 60 % of a notebook's output cells compared or asserting,
    and 25 % compared, so that `pytest --nbval` tests what the reader reads."""
    weak = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9A][0-9]_*.ipynb")):
        compared, checked = checked_shares(json.loads(path.read_text()))
        if compared < 0.25 or checked < 0.6:
            weak[path.name] = f"{compared:.0%} compared, {checked:.0%} compared or asserting"
    assert not weak, weak


def test_the_shares_count_compared_ignored_and_asserting_cells():
    def cell(tags, source="x = 1"):
        return {"cell_type": "code", "source": source, "metadata": {"tags": tags},
                "outputs": [{"output_type": "stream", "name": "stdout", "text": "1"}]}  # fmt: skip

    notebook = {"cells": [cell([]), cell(["nbval-ignore-output"], "y = 2\nassert y"),
                          cell(["nbval-ignore-output"]), cell(["nbval-skip"])]}  # fmt: skip
    assert checked_shares(notebook) == (0.25, 0.5)
