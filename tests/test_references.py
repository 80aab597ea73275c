"""Every file the project's text points to exists in the repository.

A reader who follows a link, opens a document the prose cites, or looks for a path a comment
names must find it. This scans the tracked text (Markdown, Python, the notebooks' Markdown and
code cells, YAML, TOML, cfg, the Makefile and `.ci/run`) for three kinds of reference:

- relative Markdown links and images, `[text](path)` and `![alt](path)`, resolved from the
  file's folder (web links, `mailto:` and `#anchors` are not files);
- documents named anywhere, `SOMETHING.md`, resolved from the file's folder or the root, or,
  without a folder, by name anywhere in the repository;
- paths that start with a top-level folder of the repository (`notebooks/`, `gpt1_lib/`, ...),
  resolved from the root. Templated parts (`<profile>`, `{i}`, `NN_`, `*`) match any name,
  and paths into the ignored run folders (`build/`, `runs/`, `data/raw/`, `.venv/`) are not
  checked: a run makes them.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_FOLDERS = ("notebooks", "figures", "gpt1_lib", "tests", "tools", "benchmarks", "data", ".ci")
RUN_ARTEFACTS = ("build/", "runs/", "data/raw/", ".venv/")
TEXT_SUFFIXES = {".md", ".py", ".ipynb", ".yaml", ".yml", ".toml", ".cfg"}
TEXT_NAMES = {"Makefile", ".ci/run"}
SELF = "tests/test_references.py"  # not scanned: its made-up references are the point
# Paths inside other repositories that happen to start like one of ours.
ELSEWHERE = {"data/tinyshakespeare/input.txt"}  # karpathy/char-rnn's copy of the corpus
# Results a command writes only where it can run: `make gpu-check` needs a CUDA GPU.
WRITTEN_ON_A_GPU = {"benchmarks/results/gpu.md"}

URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s)>\]\"'`]+", re.IGNORECASE)
MD_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
DOCUMENT = re.compile(r"(?<![\w./<>{}*-])([\w./<>{}*-]*[A-Za-z0-9_>}*]\.md)\b")
REPO_PATH = re.compile(
    r"(?<![\w./<>{}*-])((?:" + "|".join(re.escape(f) for f in TOP_FOLDERS) + r")/[\w./<>{}*…-]*)"
)
TEMPLATE = re.compile(r"<[^<>/]*>|\{[^{}/]*\}|\.\.\.|…")


@dataclass(frozen=True)
class Reference:
    where: str  # "path:line", or "path cell N line M" for a notebook
    kind: str  # "link", "document" or "path"
    target: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} {self.target!r} does not exist"


def repository_files() -> set[str]:
    """Tracked files plus new ones git does not ignore, as root-relative POSIX paths."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the files of the repository are unknown")
    return {p for p in out.decode().split("\0") if p and (ROOT / p).exists()}


def folders_of(files: set[str]) -> set[str]:
    return {str(parent) for f in files for parent in PurePosixPath(f).parents if str(parent) != "."}


def to_pattern(target: str) -> str:
    """A templated path as an fnmatch pattern: `<x>`, `{x}`, `...` match any name, `NN_x` any chapter's."""
    pattern = TEMPLATE.sub("*", target)
    return re.sub(r"(?<![A-Za-z0-9])NN_[a-z_]*", "[0-9][0-9]_*", pattern)


def exists(target: str, files: set[str], folders: set[str]) -> bool:
    target = target.rstrip("/")
    if not target or target == ".":
        return True
    pattern = to_pattern(target)
    if not any(c in pattern for c in "*?["):
        return target in files or target in folders
    return any(fnmatchcase(p, pattern) for p in files | folders)


def normalise(base: PurePosixPath, target: str) -> str | None:
    """base/target with `..` resolved, or None when it leaves the repository."""
    parts: list[str] = []
    for part in (base / target).parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def is_run_artefact(target: str) -> bool:
    return (
        target.startswith(RUN_ARTEFACTS)
        or target.rstrip("/") in {"build", "runs", "data/raw"}
        or target in WRITTEN_ON_A_GPU
    )


def scan_text(
    text: str,
    source: str,
    files: set[str],
    folders: set[str],
    markdown: bool,
    where: Callable[[int], str] | None = None,
) -> list[Reference]:
    """The references in `text` (from the file `source`) whose target does not exist.

    `markdown`: also check `[text](path)` links. `where(line)` names the place of a line.
    """
    where = where or (lambda line: f"{source}:{line}")
    folder = PurePosixPath(source).parent
    names = {PurePosixPath(f).name for f in files | WRITTEN_ON_A_GPU}
    missing = []
    for number, line in enumerate(text.splitlines(), start=1):
        if markdown:
            for match in MD_LINK.finditer(line):
                target = match.group(1).split("#")[0].split("?")[0]
                if not target or re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                    continue  # an anchor in this page, a web link, mailto:
                base = PurePosixPath() if target.startswith("/") else folder
                path = normalise(base, target.lstrip("/"))
                if path is None or not (is_run_artefact(path) or exists(path, files, folders)):
                    missing.append(Reference(where(number), "link", match.group(1)))
            line = MD_LINK.sub(lambda m: m.group(0).replace(m.group(1), ""), line)
        plain = URL.sub(" ", line)
        for match in DOCUMENT.finditer(plain):
            target = match.group(1)
            if "/" not in target:
                found = target in names or any(fnmatchcase(n, to_pattern(target)) for n in names)
            else:
                here = normalise(folder, target)
                found = any(
                    p is not None and (is_run_artefact(p) or exists(p, files, folders))
                    for p in (target.removeprefix("./"), here)
                )
            if not found:
                missing.append(Reference(where(number), "document", target))
        for match in REPO_PATH.finditer(plain):
            target = match.group(1).rstrip(".,:;")
            if target in ELSEWHERE:
                continue
            if not (is_run_artefact(target) or exists(target, files, folders)):
                missing.append(Reference(where(number), "path", target))
    return missing


def text_files(files: set[str]) -> list[str]:
    return sorted(
        f
        for f in files
        if (PurePosixPath(f).suffix in TEXT_SUFFIXES or f in TEXT_NAMES) and f != SELF
    )


def scan_file(path: str, files: set[str], folders: set[str]) -> list[Reference]:
    text = (ROOT / path).read_text(encoding="utf-8")
    if not path.endswith(".ipynb"):
        return scan_text(text, path, files, folders, markdown=path.endswith(".md"))
    missing = []
    for n, cell in enumerate(json.loads(text)["cells"], start=1):
        if cell["cell_type"] not in ("markdown", "code"):
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        missing += scan_text(
            source,
            path,
            files,
            folders,
            markdown=cell["cell_type"] == "markdown",
            where=lambda line, n=n: f"{path} cell {n} line {line}",
        )
    return missing


# --- the scanner on made-up text: it must catch what it is for, and nothing else ----------

FAKE_FILES = {
    "README.md",
    "notebooks/02_attention.ipynb",
    "gpt1_lib/configs/cpu.yaml",
    "data/README.md",
    "figures/02_attention_maps.png",
}


def fake_scan(text: str, source: str = "README.md", markdown: bool = True) -> list[Reference]:
    return scan_text(text, source, FAKE_FILES, folders_of(FAKE_FILES), markdown=markdown)


def test_the_scanner_catches_a_cited_document_that_is_not_there():
    cited = "COURSE" + ".md"  # spelled in two pieces so this file does not cite it
    missing = fake_scan(f"The export convention ({cited} §4) says so.\nSecond line.", "tools/x.py")
    assert [str(r) for r in missing] == [f"tools/x.py:1: document {cited!r} does not exist"]


def test_the_scanner_catches_missing_links_images_and_paths():
    text = (
        "See [the notes](docs/notes.md) and ![a map](figures/02_missing.png).\n"
        "Run `tools/make_figures.py`, then open gpt1_lib/nothing.py.\n"
    )
    found = {(r.where, r.kind, r.target) for r in fake_scan(text)}
    assert ("README.md:1", "link", "docs/notes.md") in found
    assert not any(kind == "document" for _, kind, _ in found)  # a link is reported once
    assert ("README.md:1", "link", "figures/02_missing.png") in found
    assert ("README.md:2", "path", "tools/make_figures.py") in found
    assert ("README.md:2", "path", "gpt1_lib/nothing.py") in found


def test_the_scanner_accepts_what_exists_templates_web_links_and_run_artefacts():
    text = (
        "[Attention](notebooks/02_attention.ipynb) · [data](data/README.md#mirror) · "
        "[top](#quickstart) · [hub](https://example.com/x/MISSING.md) · <mailto:a@b.c>\n"
        "`gpt1_lib/configs/<profile>.yaml`, figures/NN_name.png, notebooks/*.ipynb, "
        "gpt1_lib/configs/{name}.yaml, build/<profile>/tokenizer.json, runs/shakespeare, "
        "data/raw/input.txt, figures/.\n"
    )
    assert fake_scan(text) == []
    # a link from a notebook resolves from the notebook's folder
    assert (
        fake_scan("![maps](../figures/02_attention_maps.png)", "notebooks/02_attention.ipynb") == []
    )
    assert fake_scan("[x](02_attention.ipynb)", "README.md")[0].kind == "link"


def test_python_indexing_is_not_a_markdown_link():
    assert fake_scan("y = blocks[0](x)", "gpt1_lib/model.py", markdown=False) == []


# --- the repository ---------------------------------------------------------------------


def test_every_referenced_file_exists():
    files = repository_files()
    folders = folders_of(files)
    scanned = text_files(files)
    assert "CONTRIBUTING.md" in scanned and any(f.endswith(".ipynb") for f in scanned)
    missing = [r for path in scanned for r in scan_file(path, files, folders)]
    assert not missing, "references to files the repository does not have:\n" + "\n".join(
        map(str, missing)
    )
