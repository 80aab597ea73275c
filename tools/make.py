"""`python tools/make.py TARGET`: every Makefile target, without `make` (Windows, above all).

Hand-written (not generated). Any Python 3.10+ runs it, like `make`: each target runs with the
project's virtual environment (`.venv`), made by `install`. It exists because some targets need a
shell's features that cmd and PowerShell spell differently or lack (an environment variable with
a default, a redirect, `rm -rf`, `mktemp`); the Makefile stays the reference, and
tests/test_windows_without_make.py checks that both name the same targets and commands.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BOOK_DIR = Path("build") / "book"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome", "msedge")


def venv_bin(name: str, windows: bool = os.name == "nt") -> Path:
    """A program of the virtual environment: .venv/bin/NAME, or .venv\\Scripts\\NAME.exe."""
    return VENV / "Scripts" / f"{name}.exe" if windows else VENV / "bin" / name


def run(*args: str | Path, log: Path | None = None) -> None:
    """Run one command in the project's root (its output into `log`, if given), stopping at its
    first failure as `make` does."""
    command = [str(a) for a in args]
    if log is None:
        done = subprocess.run(command, cwd=ROOT)
    else:
        with open(log, "w", encoding="utf-8") as out:
            done = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        if log:
            print(log.read_text(encoding="utf-8", errors="replace"))
        sys.exit(done.returncode)


def python(*args: str | Path) -> None:
    if not venv_bin("python").is_file():
        sys.exit(f"no virtual environment in {VENV}: run `python tools/make.py install` first")
    run(venv_bin("python"), *args)


def install() -> None:
    if not venv_bin("python").is_file():
        run(sys.executable, "-m", "venv", VENV)
    run(venv_bin("python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(venv_bin("python"), "-m", "pip", "install", "--quiet", "-e", ".[dev]")


def test() -> None:
    """pytest in the smoke profile unless GPT1_PROFILE says otherwise (what `make test` does)."""
    os.environ.setdefault("GPT1_PROFILE", "smoke")
    python("-m", "pytest")


def book() -> None:
    """The website from the committed outputs; the full log in build/book/build.log."""
    log = ROOT / BOOK_DIR / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    run(venv_bin("jupyter-book"), "build", ".", "--all", "--config", "book/_config.yml", "--toc",
        "book/_toc.yml", "--path-output", BOOK_DIR.as_posix(), log=log)  # fmt: skip
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    for line in text.splitlines():
        if "WARNING" in line or "ERROR" in line:
            print(line)
    where = BOOK_DIR.as_posix()
    print(f"book: {where}/_build/html/index.html (log: {where}/build.log)")


def book_screenshot() -> None:
    """The README's picture of the site: one chapter in a headless Chromium (or Chrome, Edge)."""
    book()
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        sys.exit(f"no browser found (looked for {', '.join(BROWSERS)}): install Chromium")
    page = ROOT / BOOK_DIR / "_build/html/notebooks/02_attention.html"
    run(browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tempfile.mkdtemp()}", "--hide-scrollbars", "--window-size=1280,900",
        "--host-resolver-rules=MAP * ~NOTFOUND", "--screenshot=book/screenshot.png",
        page.as_uri())  # fmt: skip


def benchmarks() -> None:
    python("benchmarks/train_step.py")
    python("benchmarks/generate.py")


def clean() -> None:
    for name in ("build", ".pytest_cache"):
        shutil.rmtree(ROOT / name, ignore_errors=True)


TARGETS: dict[str, Callable[[], None]] = {
    "install": install,
    "course": lambda: python("tools/run_notebooks.py"),
    "test": test,
    "lab": lambda: run(venv_bin("jupyter"), "lab", "notebooks/"),
    "export": lambda: python("tools/export.py"),
    "links": lambda: python("tools/links.py"),
    "benchmarks": benchmarks,
    "gpu-check": lambda: python("benchmarks/gpu_check.py"),
    "book": book,
    "book-screenshot": book_screenshot,
    "clean": clean,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=TARGETS, help="the Makefile target to run")
    TARGETS[parser.parse_args(argv).target]()


if __name__ == "__main__":
    main()
