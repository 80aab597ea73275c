"""The README is the book's first page: every chapter has a working Colab badge."""

from __future__ import annotations

import json
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


ROOT = Path(__file__).resolve().parent.parent
REPO_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
README = (ROOT / "README.md").read_text()
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_notebook_has_an_open_in_colab_badge_for_this_repository():
    repo = REPO_URL.removeprefix("https://github.com/")
    for name in NOTEBOOKS:
        badge = f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/{name}"
        assert badge in README, f"README lacks the Colab badge for {name}"


def test_colab_links_name_only_existing_notebooks_of_this_repository():
    for link in re.findall(r"https://colab\.research\.google\.com/github/\S+?\.ipynb", README):
        repo, _, path = link.removeprefix("https://colab.research.google.com/github/").partition(
            "/blob/main/"
        )
        assert f"https://github.com/{repo}" == REPO_URL, link
        assert (ROOT / path).is_file(), link


def test_every_repository_url_in_the_notebooks_is_the_projects():
    for name in NOTEBOOKS:
        text = json.dumps(json.loads((ROOT / "notebooks" / name).read_text())["cells"])
        for url in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", text):
            if "gpt1" in url.lower():
                assert url == REPO_URL, f"{name} names {url}, not {REPO_URL}"
