"""The README is the book's first page: every chapter has a working Colab badge."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REPO_URL = PYPROJECT["project"]["urls"]["Repository"]
REF = PYPROJECT["tool"]["gpt1_book"]["ref"]
README = (ROOT / "README.md").read_text()
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_notebook_has_an_open_in_colab_badge_for_this_repository():
    repo = REPO_URL.removeprefix("https://github.com/")
    for name in NOTEBOOKS:
        badge = f"https://colab.research.google.com/github/{repo}/blob/{REF}/notebooks/{name}"
        assert badge in README, f"README lacks the Colab badge for {name}"


def test_colab_links_name_only_existing_notebooks_of_this_repository():
    for link in re.findall(r"https://colab\.research\.google\.com/github/\S+?\.ipynb", README):
        repo, _, path = link.removeprefix("https://colab.research.google.com/github/").partition(
            f"/blob/{REF}/"
        )
        assert f"https://github.com/{repo}" == REPO_URL, link
        assert (ROOT / path).is_file(), link


def test_every_repository_url_in_the_notebooks_is_the_projects():
    for name in NOTEBOOKS:
        text = json.dumps(json.loads((ROOT / "notebooks" / name).read_text())["cells"])
        for url in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", text):
            if "gpt1" in url.lower():
                assert url == REPO_URL, f"{name} names {url}, not {REPO_URL}"


def test_every_badge_and_install_cell_comes_from_pyproject():
    """One URL and one ref: a badge opens the notebook at the ref its install cell installs."""
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "links.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    for name in NOTEBOOKS:
        cells = json.loads((ROOT / "notebooks" / name).read_text())["cells"]
        install = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
        assert f'REPO, REF = "{REPO_URL}", "{REF}"' in install, name
        assert "git+{REPO}@{REF}" in install, name


def test_the_links_check_notices_a_stale_badge(tmp_path, monkeypatch):
    """The check above can fail: a badge left at another ref is reported."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import links
    finally:
        sys.path.remove(str(ROOT / "tools"))
    readme = tmp_path / "README.md"
    readme.write_text(README.replace(f"/blob/{REF}/", "/blob/main/", 1))
    monkeypatch.setattr(links, "README", readme)
    assert "README.md" in links.out_of_sync()


def test_every_notebook_names_its_kernel_and_the_gpu_chapter_asks_colab_for_a_gpu():
    for name in NOTEBOOKS:
        metadata = json.loads((ROOT / "notebooks" / name).read_text())["metadata"]
        assert metadata.get("kernelspec", {}).get("name") == "python3", name
    gpu = json.loads((ROOT / "notebooks" / "08_train_gpt1.ipynb").read_text())["metadata"]
    assert gpu["accelerator"] == "GPU" and gpu["colab"]["gpuType"] == "T4"
