"""Write every Colab badge and every install cell from the one place that defines them.

Hand-written (not generated). Run as `make links`, or `python tools/links.py --check` to fail
when a notebook or the README disagrees (tests/test_readme.py runs the check).

pyproject.toml holds the repository URL (`[project.urls] Repository`) and the ref that readers
get (`[tool.gpt1_book] ref`: `main`, or a release's tag). A Colab badge opens a notebook at that ref,
and that notebook's first code cell installs `gpt1_lib` from the same ref, so the chapter a
reader runs and the package it imports are always the same version, whatever `main` is doing.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import nbformat

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
INSTALL_MARK = "# On Colab, install the book's package"
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/")


def repository() -> tuple[str, str]:
    """(repository URL, ref) from pyproject.toml."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["project"]["urls"]["Repository"], pyproject["tool"]["gpt1_book"]["ref"]


def badge_prefix() -> str:
    url, ref = repository()
    return f"https://colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/{ref}/"


def install_cell() -> str:
    """The first code cell of every notebook: a no-op except on Colab."""
    url, ref = repository()
    return (
        f"{INSTALL_MARK} at the version this notebook was written for\n"
        "# (locally, `make lab` already installed it).\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    REPO, REF = "{url}", "{ref}"\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", '
        'f"gpt1_lib[notebooks] @ git+{REPO}@{REF}"], check=True)'
    )


def sync_text(text: str) -> str:
    return BADGE.sub(badge_prefix(), text)


def _sync(nb) -> bool:
    """Rewrite a notebook's install cell and badges in memory; return whether anything changed."""
    install = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(INSTALL_MARK)]
    if len(install) != 1:
        raise SystemExit(f"expected one install cell starting {INSTALL_MARK!r}")
    changed = install[0].source != install_cell()
    install[0].source = install_cell()
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (new := sync_text(cell.source)) != cell.source:
            cell.source, changed = new, True
    return changed


def ref_exists(ref: str, root: Path = ROOT) -> bool:
    """Can readers open `ref`? A tag of the repository, or `main` as one of its branches (a local
    branch or a remote's: CI checks out a pull request's merge commit with `main` only as
    `origin/main`). Needs the refs in the checkout: CI fetches with `fetch-depth: 0`."""
    names = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/tags", "refs/heads", "refs/remotes"],
        cwd=root, capture_output=True, text=True, encoding="utf-8", check=True,
    ).stdout.split()  # fmt: skip
    if f"refs/tags/{ref}" in names:
        return True
    return ref == "main" and any(re.fullmatch(r"refs/(heads|remotes/[^/]+)/main", n) for n in names)


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9A][0-9]_*.ipynb"))


def out_of_sync() -> list[str]:
    """Files whose badges or install cell differ from pyproject.toml's URL and ref."""
    stale = [
        str(path.relative_to(ROOT))
        for path in notebooks()
        if _sync(nbformat.read(path, as_version=4))
    ]
    text = README.read_text(encoding="utf-8")
    return stale + (["README.md"] if sync_text(text) != text else [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if any file is out of sync")
    args = parser.parse_args()
    if args.check:
        if stale := out_of_sync():
            print("out of sync with pyproject.toml (run `make links`): " + ", ".join(stale))
            return 1
        return 0
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        if _sync(nb):
            nbformat.write(nb, path)
            print(f"updated {path.relative_to(ROOT)}")
    text = README.read_text(encoding="utf-8")
    if sync_text(text) != text:
        README.write_text(sync_text(text), encoding="utf-8")
        print("updated README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
