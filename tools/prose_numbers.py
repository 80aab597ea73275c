"""A measured number in prose is a number the notebook prints.

Hand-written; `make test` runs it (tests/test_prose_numbers.py), and an author runs it by hand
after editing a chapter: `python tools/prose_numbers.py [notebooks/NN_name.ipynb ...]`.

Prose drifts from the outputs beside it when a cell is re-run and the sentence is not: nbval
cannot notice, because a cell whose output depends on the machine is tagged
`nbval-ignore-output`. This check reads the committed notebooks (it runs nothing):

- In every Markdown cell it finds the numbers that look measured: a number with a decimal
  point (`2.56`, `6.25e-5`), a percentage (`59 %`), a ratio (`2.6×`) or a duration
  (`15 s`, `0.3 ms`, `4 min`). Section numbers (`§4.1`, `section 4.3`, a heading's `4.1`),
  versions (`3.11.7`), inline code, code blocks and links are not prose numbers.
- Each must appear, at the precision the prose gives, among the numbers the notebook's
  outputs print: `2.56` matches a printed 2.5649, `59 %` a printed 59.3% or 0.593.
- A number that is not a measurement (a constant quoted from the paper, OpenAI's code, a
  config file or a formula) is listed in the same cell, where a reader does not see it, in an
  HTML comment with the reason:
  `<!-- quoted: 2.5e-4 the paper's peak learning rate; 3e-3 gpt1_lib/configs/cpu.yaml -->`.
  A reason that names a file of the repository is checked too: the number must be in it.
  A listed number the cell no longer says is reported, so the list cannot go stale either.

The README is checked the same way against what it quotes: the numbers in
`benchmarks/results/*.md` and in every notebook's outputs.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

QUOTED = re.compile(r"<!--\s*quoted:(.*?)-->", re.S | re.I)
COMMENT = re.compile(r"<!--.*?-->", re.S)
FENCE = re.compile(r"^ *(```|~~~).*?^ *\1", re.S | re.M)
INLINE_CODE = re.compile(r"(`+).+?\1", re.S)
LINK_TARGET = re.compile(r"\]\([^)]*\)")
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)
HEADING_NUMBER = re.compile(r"^(#+\s*)[\d.]+\s", re.M)
HTML_TAG = re.compile(r"<[^<>\n]*>")
# A number: digits (with thousands commas), a decimal part, an exponent, a scale (116.5M,
# 3.3 billion), then what marks it as measured (a percentage, a ratio, a duration).
# "2 × 3" is arithmetic, not a ratio.
NUMBER = re.compile(
    r"(?<![\w.§/#-])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?:[eE]([-−+]?\d+))?(?![\d,]\d|\.\d)"
    r"(\s?(?:million|billion|thousand)\b|(?:M|B|k)(?![A-Za-z]))?"
    r"(\s?%|\s?×(?!\s?\d)|\s?(?:ms|µs|us|s|min|tok/s|tokens/s)\b(?!-))?"
)
SCALES = {"thousand": 1e3, "k": 1e3, "million": 1e6, "M": 1e6, "billion": 1e9, "B": 1e9}
# Words before a number that make it a reference, not a quantity ("section 4.1", "Table 5").
REFERENCE_WORDS = {
    "section", "sections", "chapter", "chapters", "table", "figure", "step", "steps", "cell",
    "python", "torch", "pytorch", "transformers", "version", "eq", "equation", "§",
}  # fmt: skip
VERSION_WORDS = {"python", "torch", "pytorch", "transformers", "version"}
OUTPUT_NUMBER = re.compile(
    r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?)(\s?(?:million|billion)\b|[MBk](?![A-Za-z]))?"
)
PATH_IN_REASON = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)+[\w.-]+\.\w+)")


@dataclass(frozen=True)
class ProseNumber:
    text: str  # as written, e.g. "59 %"
    value: float
    tolerance: float  # half a unit of the last digit the prose gives
    percent: bool
    context: str

    def printed_in(self, printed: Iterable[float]) -> bool:
        for x in printed:
            if abs(x - self.value) <= self.tolerance:
                return True
            if self.percent and x <= 1.0 and abs(100 * x - self.value) <= self.tolerance:
                return True
        return False


@dataclass(frozen=True)
class Problem:
    where: str  # "notebooks/NN_name.ipynb cell 12" or "README.md"
    number: str
    why: str
    context: str = ""

    def __str__(self) -> str:
        context = f" (…{self.context}…)" if self.context else ""
        return f"{self.where}: {self.number!r} {self.why}{context}"


def parse_number(
    whole: str, fraction: str | None, exponent: str | None, unit: str | None = None
) -> tuple[float, float]:
    """The value of a written number and half a unit of its last digit."""
    digits = len(fraction) - 1 if fraction else 0
    scale = 10.0 ** int(exponent.replace("−", "-")) if exponent else 1.0
    scale *= SCALES.get((unit or "").strip(), 1.0)
    value = float(whole.replace(",", "") + (fraction or "")) * scale
    return value, 0.5 * 10.0**-digits * scale * (1 + 1e-9) + 1e-12


def prose_text(markdown: str) -> str:
    """The Markdown a reader sees as prose: no comments, code, links or heading numbers."""
    text = COMMENT.sub(" ", markdown)
    text = FENCE.sub(" ", text)
    text = INLINE_CODE.sub(" ", text)
    text = LINK_TARGET.sub("]", text)
    text = URL.sub(" ", text)
    text = HTML_TAG.sub(" ", text)
    return HEADING_NUMBER.sub(r"\1", text)


def measured_numbers(markdown: str) -> Iterator[ProseNumber]:
    """The numbers in `markdown` that look measured, in order."""
    text = prose_text(markdown)
    for m in NUMBER.finditer(text):
        whole, fraction, exponent, unit, mark = m.groups()
        if fraction is None and mark is None:
            continue  # a count or a size ("2,048 tokens", "12 layers"): not checked
        before = text[max(0, m.start() - 24) : m.start()].lower()
        word = re.search(r"([a-z§]+)[\s≥≤<>=~(]*$", before)  # the word right before the number
        if (word and word.group(1) in REFERENCE_WORDS) or before.rstrip().endswith("§"):
            continue  # "section 4.1", "Python ≥ 3.10", "(§9.2": a reference or a version
        if VERSION_WORDS & set(re.findall(r"[a-z]+", before)[-2:]):
            continue  # "torch before 2.6"
        value, tolerance = parse_number(whole, fraction, exponent, unit)
        start, end = max(0, m.start() - 40), min(len(text), m.end() + 20)
        yield ProseNumber(
            text=m.group(0).strip(),
            value=value,
            tolerance=tolerance,
            percent=bool(mark and "%" in mark),
            context=" ".join(text[start:end].split()),
        )


def printed_numbers(text: str) -> list[float]:
    """Every number in `text`; one printed with a scale (3.28B) counts scaled and as written."""
    numbers = []
    for digits, unit in OUTPUT_NUMBER.findall(text):
        value = float(digits.replace(",", ""))
        numbers.append(value)
        if unit:
            numbers.append(value * SCALES[unit.strip()])
    return numbers


def output_text(cell: dict) -> str:
    """Everything a code cell's committed outputs print as text."""
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append("".join(out["text"]))
        elif out["output_type"] in ("execute_result", "display_data"):
            for kind in ("text/markdown", "text/html", "text/plain", "text/latex"):
                if kind in out.get("data", {}):
                    parts.append(HTML_TAG.sub(" ", "".join(out["data"][kind])))
                    break
    return "\n".join(parts)


def quoted_constants(markdown: str, where: str) -> tuple[list[ProseNumber], list[Problem]]:
    """The numbers a cell lists as quoted constants, and what is wrong with the list."""
    listed, problems = [], []
    for block in QUOTED.findall(markdown):
        for entry in filter(None, (e.strip() for e in block.split(";"))):
            m = re.match(
                r"([\d,]+)(\.\d+)?(?:[eE]([-−+]?\d+))?(\s?(?:million|billion|thousand)\b|[MBk]"
                r"(?![A-Za-z]))?\s*(%|×)?\s*(.*)",
                entry,
                re.S,
            )
            if not m or not m.group(1)[0].isdigit():
                problems.append(Problem(where, entry, "is not 'NUMBER reason' in the quoted list"))
                continue
            whole, fraction, exponent, unit, mark, reason = m.groups()
            if not reason.strip():
                problems.append(Problem(where, entry, "is listed as quoted without a reason"))
                continue
            value, tolerance = parse_number(whole, fraction, exponent, unit)
            number = ProseNumber(entry.split()[0], value, tolerance, mark == "%", reason.strip())
            listed.append(number)
            for path in PATH_IN_REASON.findall(reason):
                source = ROOT / path
                said = source.read_text(encoding="utf-8") if source.is_file() else None
                if said is not None and not number.printed_in(printed_numbers(said)):
                    problems.append(Problem(where, number.text, f"is quoted from {path}, which "
                                                                "does not hold it"))  # fmt: skip
    return listed, problems


def check_markdown(markdown: str, printed: list[float], where: str) -> list[Problem]:
    """Problems of one Markdown text against the numbers its source printed."""
    listed, problems = quoted_constants(markdown, where)
    said = list(measured_numbers(markdown))
    for number in said:
        if number.printed_in(printed):
            continue
        if any(abs(q.value - number.value) <= max(q.tolerance, number.tolerance) for q in listed):
            continue
        problems.append(Problem(where, number.text, "is not a number the outputs print, nor a "
                                                    "listed quoted constant", number.context))  # fmt: skip
    for q in listed:
        if not any(abs(q.value - n.value) <= max(q.tolerance, n.tolerance) for n in said):
            problems.append(Problem(where, q.text, "is listed as quoted but the prose no longer "
                                                   "says it (remove it from the list)"))  # fmt: skip
    return problems


def check_notebook(path: Path) -> list[Problem]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    printed = printed_numbers("\n".join(output_text(c) for c in cells if c["cell_type"] == "code"))
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return [
        problem
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "markdown"
        for problem in check_markdown("".join(cell["source"]), printed, f"{name} cell {i}")
    ]


def check_readme(readme: Path, results: Iterable[Path], notebooks: Iterable[Path]) -> list[Problem]:
    """The README against what it quotes: benchmark results and the notebooks' outputs."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in results)
    for nb in notebooks:
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        text += "\n".join(output_text(c) for c in cells)
    return check_markdown(readme.read_text(encoding="utf-8"), printed_numbers(text), readme.name)


def check_book(root: Path = ROOT) -> list[Problem]:
    notebooks = sorted((root / "notebooks").glob("[0-9A][0-9]_*.ipynb"))
    problems = [p for nb in notebooks for p in check_notebook(nb)]
    results = sorted((root / "benchmarks" / "results").glob("*.md"))
    return problems + check_readme(root / "README.md", results, notebooks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: the book and README")
    args = parser.parse_args(argv)
    if args.notebooks:
        problems = [p for nb in args.notebooks for p in check_notebook(nb.resolve())]
    else:
        problems = check_book()
    if isinstance(sys.stdout, io.TextIOWrapper):  # a cp1252 pipe (Windows) lacks letters we quote
        sys.stdout.reconfigure(errors="backslashreplace")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
