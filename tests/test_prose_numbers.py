"""A measured number in prose is a number the notebook prints (tools/prose_numbers.py).

The check reads the committed notebooks and the README; it runs nothing, so it is fast. Its
self-tests plant stale numbers in made-up notebooks and check that it names the cell and the
number, and that it lets through what it must: printed numbers at the prose's precision,
listed quoted constants, section numbers and code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import prose_numbers  # noqa: E402


def notebook(tmp_path: Path, *cells: tuple[str, str]) -> Path:
    """A notebook of ("markdown", text) and ("output", printed text) cells."""

    def cell(kind: str, text: str) -> dict:
        if kind == "markdown":
            return {"cell_type": "markdown", "metadata": {}, "source": text}
        out = {"output_type": "stream", "name": "stdout", "text": text}
        return {"cell_type": "code", "metadata": {}, "source": "print(...)", "outputs": [out]}

    path = tmp_path / "99_made_up.ipynb"
    path.write_text(json.dumps({"cells": [cell(k, t) for k, t in cells], "metadata": {}}))
    return path


def problems(path: Path) -> list[tuple[str, str]]:
    return [(p.where.split()[-1], p.number) for p in prose_numbers.check_notebook(path)]


def test_the_book_and_the_readme_say_only_numbers_they_print_or_quote():
    found = prose_numbers.check_book()
    assert not found, (
        "prose numbers that no output prints (fix the prose, print the number, or list a quoted "
        "constant in the cell: <!-- quoted: NUMBER reason -->):\n" + "\n".join(map(str, found))
    )


def test_a_planted_stale_number_is_reported_with_its_cell(tmp_path):
    path = notebook(
        tmp_path,
        ("output", "validation loss 4.1986, 56.5% right, 2.64x faster, 216 s\n"),
        ("markdown", "The run ends at 4.20 nats, 56.5 % right, 2.6× faster, in 216 s."),
        ("markdown", "Pre-LN ended at 2.55 and picked the true line 59 % of the time."),
        ("markdown", "It took 230 s and ran 3.9× faster."),
    )
    assert problems(path) == [("2", "2.55"), ("2", "59 %"), ("3", "230 s"), ("3", "3.9×")]
    message = str(prose_numbers.check_notebook(path)[0])
    assert "cell 2" in message and "'2.55'" in message and "ended at 2.55" in message


def test_precision_percent_and_fraction(tmp_path):
    path = notebook(
        tmp_path,
        ("output", "accuracy 0.565 · loss 2.5649 · 1,115,394 bytes · ratio 0.32 · 4.3 MB\n"),
        ("markdown", "56.5 % and 57 % right; a loss of 2.56 (2.565 is printed rounded)."),
        ("markdown", "A loss of 2.57, 45 % of it, 32 % of it (0.32 printed), and 0.3 of it."),
        ("markdown", "The corpus: 1.1 million bytes, 1.12M, not 1.2M; a 4.3 MB file is not 4.3M."),
    )
    assert problems(path) == [("2", "2.57"), ("2", "45 %"), ("3", "1.2M"), ("3", "4.3M")]


def test_references_versions_code_and_counts_are_not_measurements(tmp_path):
    text = (
        "### 4.1 The basic version\n"
        "As section 4.3 and §9.2 show (Table 5, torch 2.14.1, Python ≥ 3.10), `lr = 2.5e-4` in\n"
        "code, ```\nx = 0.37\n``` in a block, [a link](https://x.org/v1.5/page), 2,048 tokens\n"
        "and 12 layers, 64 × 512 tokens per batch."
    )
    assert problems(notebook(tmp_path, ("markdown", text))) == []


def test_quoted_constants_are_listed_with_a_reason_and_checked(tmp_path):
    text = (
        "GPT-1's peak rate 2.5e-4 and its init 0.02; the cpu preset's 3.0e-3.\n"
        "<!-- quoted: 2.5e-4 the paper's peak learning rate; 0.02 the paper's init std;\n"
        "3.0e-3 gpt1_lib/configs/cpu.yaml -->"
    )
    assert problems(notebook(tmp_path, ("markdown", text))) == []
    no_reason = "Its init 0.02.\n<!-- quoted: 0.02 -->"
    assert problems(notebook(tmp_path, ("markdown", no_reason))) == [("0", "0.02"), ("0", "0.02")]
    wrong_file = "A rate of 4.5e-3.\n<!-- quoted: 4.5e-3 gpt1_lib/configs/cpu.yaml -->"
    assert problems(notebook(tmp_path, ("markdown", wrong_file))) == [("0", "4.5e-3")]
    stale_list = "No number here.\n<!-- quoted: 0.02 the paper's init std -->"
    assert problems(notebook(tmp_path, ("markdown", stale_list))) == [("0", "0.02")]


def test_the_readme_is_checked_against_the_results_it_quotes(tmp_path):
    results = tmp_path / "bench_results.txt"
    results.write_text("| decoder | 710 tokens/s | 3.64x |\n")
    readme = tmp_path / "README.md"
    readme.write_text("The decoder: 710 tokens/s, 3.6× the peer; fine-tuning 59.2 % right.\n")
    found = prose_numbers.check_readme(readme, [results], [])
    assert [p.number for p in found] == ["59.2 %"]
