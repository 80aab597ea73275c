"""Every reference to a section of the book names a section that exists.

The chapters point at each other ("chapter 03 §6", "§11 of chapter 02", "chapter 05, section
7") and at their own sections ("section 8"); the README, the library's docstrings, the
solutions and the tests do too. A section is a numbered heading of a notebook (`## 9. ...`,
`### 4.1 ...`). When a chapter is restructured, a reference to a section it no longer has is
reported with where it stands. A bare "§3.2" is not checked: the book also writes the paper's
sections that way. A "section N" that the sentence says is the paper's is not checked either.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADING = re.compile(r"^#{2,4}\s+(\d+(?:\.\d+)*)\.?\s", re.M)
SECTION = r"(\d+(?:\.\d+)?)"
CHAPTER_REFERENCE = re.compile(
    rf"\b(?:[Cc]hapters?|[Aa]ppendix) (\d\d|A\d)(?:'s)?,? (?:§ ?|sections? ){SECTION}"
    rf"|(?:§ ?|\b[Ss]ections? ){SECTION} of (?:chapter|appendix) (\d\d|A\d)"
)
OWN_SECTION = re.compile(rf"\b[Ss]ections? {SECTION}(?:(?:,| and| to| or|–|-) ?{SECTION})?")
PAPER = re.compile(r"paper|Radford|GPT-1 \(|GPT-2 \(|\bTable\b", re.I)
SCANNED = ("README.md", "CONTRIBUTING.md", "notebooks/*.ipynb", "gpt1_lib/*.py",
           "gpt1_lib/configs/*.yaml", "tests/*.py", "solutions/*.py", "benchmarks/*.py",
           "benchmarks/results/*.md", "tools/*.py", "data/README.md")  # fmt: skip
SELF = Path(__file__).name


def sections(notebook_cells: list[dict]) -> set[str]:
    """The numbers of a notebook's numbered headings."""
    return {
        number
        for cell in notebook_cells
        if cell["cell_type"] == "markdown"
        for number in HEADING.findall("".join(cell["source"]))
    }


def book_sections(root: Path = ROOT) -> dict[str, set[str]]:
    """Chapter number ("01", or an appendix's "A1") -> the section numbers it has."""
    return {
        path.name[:2]: sections(json.loads(path.read_text())["cells"])
        for path in sorted((root / "notebooks").glob("[0-9A][0-9]_*.ipynb"))
    }


def texts(path: Path) -> list[tuple[str, str]]:
    """(where, text) of a file: one per cell for a notebook, its whole text otherwise."""
    if path.suffix != ".ipynb":
        return [(str(path.relative_to(ROOT)), path.read_text())]
    cells = json.loads(path.read_text())["cells"]
    return [
        (f"{path.relative_to(ROOT)} cell {i}", "".join(c["source"])) for i, c in enumerate(cells)
    ]


def broken_references(text: str, where: str, book: dict[str, set[str]], chapter: str | None):
    """The references of `text` to sections the book lacks; `chapter`: the notebook it is in."""
    text = re.sub(r"\s+", " ", text)
    found = []
    for m in CHAPTER_REFERENCE.finditer(text):
        ch, number = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        if ch not in book or number not in book[ch]:
            found.append(f"{where}: chapter {ch} §{number} does not exist ({m.group(0)!r})")
    if chapter is None:
        return found
    for m in OWN_SECTION.finditer(text):
        around = text[max(0, m.start() - 60) : m.end() + 25]
        if PAPER.search(around) or re.match(
            r" of (?:chapter|appendix)", text[m.end() : m.end() + 12]
        ):
            continue  # the paper's section, or a chapter reference (checked above)
        if re.search(
            r"(?:[Cc]hapters?|[Aa]ppendix) (?:\d\d|A\d)(?:'s)?,? $",
            text[max(0, m.start() - 14) : m.start()],
        ):
            continue
        for number in filter(None, m.groups()):
            if number not in book[chapter]:
                found.append(f"{where}: section {number} of chapter {chapter} does not exist "
                             f"({m.group(0)!r})")  # fmt: skip
    return found


def test_every_section_reference_names_a_section_that_exists():
    book = book_sections()
    assert len([c for c in book if c.isdigit()]) == 9 and all(book.values())
    found = []
    for pattern in SCANNED:
        for path in sorted(ROOT.glob(pattern)):
            if path.name == SELF:
                continue
            chapter = path.name[:2] if path.suffix == ".ipynb" else None
            for where, text in texts(path):
                found += broken_references(text, where, book, chapter)
    assert not found, "references to sections that do not exist:\n" + "\n".join(found)


def test_the_check_catches_a_reference_to_a_missing_section():
    book = {"01": {"1", "4", "4.1", "9"}, "02": {"1", "11"}}
    text = (
        "As chapter 01 §9 shows, and §11 of chapter 02; chapter 01 §12 is gone, so is\n"
        "§3 of chapter 02, chapter 02, section 5, and this chapter's section 7. Section 4.1\n"
        "and sections 1 to 4 exist; the paper's section 4.3 is not ours to check."
    )
    found = broken_references(text, "x", book, chapter="01")
    assert [f.split(" (")[0] for f in found] == [
        "x: chapter 01 §12 does not exist",
        "x: chapter 02 §3 does not exist",
        "x: chapter 02 §5 does not exist",
        "x: section 7 of chapter 01 does not exist",
    ]
    assert broken_references(text, "x", book, chapter=None)[-1].startswith("x: chapter 02 §5")


def test_the_check_reads_references_to_the_appendices_too():
    book = {"01": {"1"}, "A1": {"1", "2"}}
    text = "Appendix A1 §2 builds it; §3 of appendix A1 and appendix A2, section 1 do not exist."
    found = broken_references(text, "x", book, chapter=None)
    assert [f.split(" (")[0] for f in found] == [
        "x: chapter A1 §3 does not exist",
        "x: chapter A2 §1 does not exist",
    ]
