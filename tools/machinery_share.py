"""How much of each chapter's code is machinery: `python tools/machinery_share.py`.

Hand-written (not generated). The book has two layers (CONTRIBUTING.md, "Two layers"): the
core, where a chapter teaches one idea, and the machinery (downloads, caches, file formats of
other libraries, locks, config checks, command lines, speed work for one kind of hardware).
A chapter's *machinery share* is the fraction of its code lines that are machinery, counted so:

- a code line is a line of a code cell that is neither blank nor only a comment (the install
  cell every notebook opens with is not counted);
- a section (a `##` heading and the cells up to the next) is machinery when its heading starts
  with "Plumbing", or when most of the lines it exports (`#| export`) go to modules of
  `MACHINERY`: then all its code lines count, the demonstrations with the code;
- in any other section, the lines of a cell that exports to a module of `MACHINERY` count.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
# The modules of the machinery layer (CONTRIBUTING.md's picture, right-hand column).
MACHINERY = frozenset({
    "atomic", "corpus", "download", "releases", "token_cache", "task_files", "shakespeare_tasks",
    "pretrained", "hub", "hf_export", "finetune_hf", "load", "fast_decode", "cpu_attention", "run_data",
    "tensorboard_log", "sample", "finetune", "doctor", "hardware",
})  # fmt: skip
DIRECTIVE = re.compile(r"^#\|\s*(default_exp|export)\b\s*(\S+)?\s*$")
INSTALL_MARK = "# On Colab, install the book's package"


def _code_lines(source: str) -> int:
    return sum(
        1 for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


def _sections(path: Path) -> list[tuple[str, list[tuple[str | None, int]]]]:
    """(heading, [(export target or None, code lines) per code cell]) of each `##` section."""
    nb = nbformat.read(path, as_version=4)
    sections: list[tuple[str, list[tuple[str | None, int]]]] = [("", [])]
    default = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = re.match(r"##?\s+(.*)", cell.source.strip())
            if heading:
                sections.append((heading.group(1), []))
            continue
        if cell.cell_type != "code" or cell.source.startswith(INSTALL_MARK):
            continue
        match = DIRECTIVE.match(cell.source.split("\n", 1)[0].strip())
        target = None
        if match and match.group(1) == "default_exp":
            default = match.group(2)
        elif match:
            target = match.group(2) or default
        sections[-1][1].append((target, _code_lines(cell.source)))
    return sections


def share(path: Path) -> tuple[int, int]:
    """(machinery lines, all code lines) of one notebook."""
    machinery = total = 0
    for heading, cells in _sections(path):
        exported = [(t, n) for t, n in cells if t is not None]
        to_machinery = sum(n for t, n in exported if t in MACHINERY)
        whole = heading.startswith("Plumbing") or to_machinery * 2 > sum(n for _, n in exported)
        total += sum(n for _, n in cells)
        machinery += sum(n for t, n in cells if whole or t in MACHINERY)
    return machinery, total


def main() -> None:
    chapters = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    print(f"{'chapter':32s} {'machinery':>9s} {'code':>6s} {'share':>6s}")
    for path in chapters:
        m, t = share(path)
        print(f"{path.stem:32s} {m:9d} {t:6d} {m / t:6.0%}")


if __name__ == "__main__":
    main()
