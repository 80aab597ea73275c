"""Every Makefile target has a spelling without `make` (issue 30, Windows): `python tools/make.py
TARGET` runs the commands the Makefile runs, and CONTRIBUTING.md's "Without `make`" table names
every target. The Makefile is the reference: its recipes are read here and compared with the
commands tools/make.py runs (recorded, not run)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import make  # noqa: E402

SHELL_ONLY = ("mkdir", "grep", "echo", "test", "touch", "rm")  # done in Python by tools/make.py


def makefile() -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    """(the .PHONY targets, {target: the targets it depends on}, {target: its recipe's command
    lines, continuations joined})."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M)
    assert phony, "Makefile has no .PHONY line"
    depends: dict[str, list[str]] = {}
    recipes: dict[str, list[str]] = {}
    target = None
    for line in text.splitlines():
        if match := re.match(r"^([\w-]+):(.*)$", line):
            target = match[1]
            depends[target], recipes[target] = match[2].split(), []
        elif line.startswith("\t") and target:
            recipes[target].append(line.strip().lstrip("@"))
    return phony[1].split(), depends, recipes


def expected_commands(target: str, recipes: dict[str, list[str]]) -> list[list[str]]:
    """The commands of a target's recipe with the Makefile's variables filled in, without what
    only a shell does (a redirect, `|| ...`, a leading VAR=value, mkdir, grep, echo)."""
    values = {
        "$(PY)": str(make.venv_bin("python")),
        "$(JUPYTER_BOOK)": str(make.venv_bin("jupyter-book")),
        "$(BOOK_DIR)": make.BOOK_DIR.as_posix(),
        "$(CURDIR)": make.ROOT.as_posix(),
        "$$(mktemp -d)": "TMP",
    }
    commands = []
    for line in recipes[target]:
        line = re.sub(r"\$\(VENV\)/bin/([\w-]+)", lambda m: str(make.venv_bin(m[1])), line)
        for name, value in values.items():
            line = line.replace(name, value)
        words = shlex.split(line)
        while words and re.match(r"^\w+=", words[0]):
            words.pop(0)
        if not words or words[0] in SHELL_ONLY:
            continue
        cut = [i for i, w in enumerate(words) if w in (">", "||", "&&") or w.startswith("2>")]
        commands.append(words[: cut[0]] if cut else words)
    return commands


@pytest.fixture
def ran(monkeypatch, tmp_path) -> list[list[str]]:
    """The commands tools/make.py runs, recorded instead of run, with the project's root (and its
    virtual environment) in a temporary folder."""
    commands: list[list[str]] = []
    monkeypatch.setattr(
        make, "run", lambda *args, log=None: commands.append([str(a) for a in args])
    )
    monkeypatch.setattr(make, "ROOT", tmp_path)
    monkeypatch.setattr(make, "VENV", tmp_path / ".venv")  # made by `install`
    make.venv_bin("python").parent.mkdir(parents=True)
    make.venv_bin("python").touch()
    monkeypatch.setattr(make.tempfile, "mkdtemp", lambda: "TMP")
    monkeypatch.setattr(make.shutil, "which", lambda b: "chromium" if b == "chromium" else None)
    return commands


@pytest.mark.parametrize("target", makefile()[0])
def test_tools_make_runs_what_the_makefile_runs(target, ran, monkeypatch):
    phony, depends, recipes = makefile()
    assert target in make.TARGETS, f"tools/make.py has no target {target}"
    monkeypatch.delenv("GPT1_PROFILE", raising=False)
    make.main([target])
    first = [d for d in depends[target] if d in phony]  # book-screenshot builds the book first
    assert ran == [c for t in [*first, target] for c in expected_commands(t, recipes)]
    assert set(make.TARGETS) == set(phony), "tools/make.py and the Makefile differ in targets"


def test_clean_removes_what_the_makefile_removes(ran, tmp_path):
    removed = [w for line in makefile()[2]["clean"] if line.startswith("rm -rf")
               for w in line.split()[2:]]  # fmt: skip
    assert removed
    for name in [*removed, "notebooks", "runs"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "kept.txt").write_text("x")
    make.main(["clean"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".venv", "notebooks", "runs"]


def test_install_makes_the_venv_when_there_is_none(ran, monkeypatch, tmp_path):
    monkeypatch.setattr(make, "VENV", tmp_path / "new" / ".venv")  # none there yet
    make.main(["install"])
    assert ran[0] == [sys.executable, "-m", "venv", str(tmp_path / "new" / ".venv")]
    assert ran[1][0] == str(make.venv_bin("python")) and len(ran) == 3


def test_the_profile_of_make_test_is_smoke_unless_set(ran, monkeypatch):
    seen = []
    monkeypatch.setattr(make, "python", lambda *args: seen.append(make.os.environ["GPT1_PROFILE"]))
    monkeypatch.delenv("GPT1_PROFILE", raising=False)
    make.main(["test"])
    monkeypatch.setenv("GPT1_PROFILE", "gpu")
    make.main(["test"])
    assert seen == ["smoke", "gpu"]


def test_windows_finds_the_venv_programs_in_scripts():
    assert make.venv_bin("python", windows=True) == make.VENV / "Scripts" / "python.exe"
    assert make.venv_bin("jupyter-book", windows=False) == make.VENV / "bin" / "jupyter-book"


def test_contributing_spells_every_target_without_make():
    """CONTRIBUTING.md's "Without `make`" table: one row per Makefile target, each with its
    `python tools/make.py TARGET`."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text.split("**Without `make`**", 1)[1].split("\n\n", 2)[1]
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `make ([\w-]+)` \|(.*)$", section, re.M)}
    phony = makefile()[0]
    assert sorted(rows) == sorted(phony)
    for target, row in rows.items():
        assert f"`python tools/make.py {target}`" in row, row
