"""The README is the book's first page: every chapter has a working Colab badge."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from tool_helpers import import_tool

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REPO_URL = PYPROJECT["project"]["urls"]["Repository"]
REF = PYPROJECT["tool"]["gpt1_book"]["ref"]
README = (ROOT / "README.md").read_text()
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9A][0-9]_*.ipynb"))


MAX_WORDS = 1500  # a newcomer reads it in two minutes


def prose_words(markdown: str) -> list[str]:
    """The words a reader reads: code blocks, HTML comments and link targets left out."""
    text = re.sub(r"<!--.*?-->", "", markdown, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return [w for w in text.split() if re.search(r"[A-Za-z0-9]", w)]


def test_the_readme_is_short_and_its_first_screen_says_what_shows_and_runs():
    """At most 1,500 words; before the first section: what it is, one picture, chapter 08's
    Colab badge and the two commands."""
    words = prose_words(README)
    assert len(words) <= MAX_WORDS, f"{len(words)} words: the README is for a two-minute read"
    first = README[: README.index("\n## ")]
    assert len(prose_words(first)) <= 150, "the first screen is a screen"
    assert re.search(r"!\[[^\]]+\]\((?!http)[^)]+\.(png|svg)\)", first), "a picture"
    assert f"/blob/{REF}/notebooks/08_train_gpt1.ipynb" in first, "chapter 08's Colab badge"
    commands = [ln for _, code in _blocks("bash") if code in first for ln in code.splitlines()]
    assert len([c for c in commands if c.strip() and not c.startswith("#")]) == 2, commands


def test_every_link_and_figure_the_readme_shows_exists():
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and t.split("#")[0]]
    assert local, "the README links its chapters and evidence"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"the README links to files that do not exist: {missing}"


def test_every_notebook_has_an_open_in_colab_badge_for_this_repository():
    repo = REPO_URL.removeprefix("https://github.com/")
    for name in NOTEBOOKS:
        badge = f"https://colab.research.google.com/github/{repo}/blob/{REF}/notebooks/{name}"
        assert badge in README, f"README lacks the Colab badge for {name}"


def _links():
    return import_tool("links")


def test_the_ref_readers_get_exists_main_or_a_tag_of_this_repository():
    """A badge opens `blob/REF/...` and an install cell installs `@REF`: a ref the repository
    lacks is a 404 on GitHub and a failed first cell on Colab. `main` must be a branch of the
    checkout (local, or a remote's), a release a tag (CI fetches both: `fetch-depth: 0`)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: its tags cannot be listed")
    tags = subprocess.run(["git", "tag", "--list"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()  # fmt: skip
    assert _links().ref_exists(REF), (
        f"[tool.gpt1_book] ref = {REF!r} is neither the branch `main` nor a tag of this "
        f"repository (tags: {tags or 'none'}): set it to main, or cut the release (CONTRIBUTING.md)"
    )


def test_the_ref_check_wants_main_to_be_a_branch_and_a_release_to_be_a_tag(tmp_path):
    """The check above can fail: `main` in a repository whose only branch is another, or a tag
    that was never made, is refused; a local main, a remote's main and a tag pass."""
    ref_exists = _links().ref_exists

    def git(*args: str, cwd: Path = tmp_path / "repo") -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                       check=True, capture_output=True)  # fmt: skip

    (tmp_path / "repo").mkdir()
    git("init", "-q", "-b", "trunk")
    git("commit", "-q", "--allow-empty", "-m", "first")
    repo = tmp_path / "repo"
    assert not ref_exists("main", repo) and not ref_exists("v0.1.0", repo)
    git("tag", "v0.1.0")
    assert ref_exists("v0.1.0", repo) and not ref_exists("main", repo)
    git("clone", "-q", str(repo), str(tmp_path / "clone"), cwd=tmp_path)
    git("branch", "main")
    git("fetch", "-q", "origin", cwd=tmp_path / "clone")
    git("checkout", "-q", "--detach", cwd=tmp_path / "clone")
    git("branch", "-D", "trunk", cwd=tmp_path / "clone")
    assert ref_exists("main", tmp_path / "clone"), "main as origin/main only, as CI checks out a PR"
    assert ref_exists("main", repo) and not ref_exists("trunk-typo", repo)


def test_ci_checks_out_the_tags_and_branches_the_ref_check_reads():
    """actions/checkout's default is one commit without tags: the ref check would then fail
    after every release, and find `main` only on pushes to main."""
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "test.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout"))
    assert checkout.get("with", {}).get("fetch-depth") == 0, checkout
    assert checkout["with"].get("fetch-tags") is True, checkout


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
    links = _links()
    readme = tmp_path / "README.md"
    readme.write_text(README.replace(f"/blob/{REF}/", "/blob/v0.0.1-stale/", 1))
    monkeypatch.setattr(links, "README", readme)
    assert "README.md" in links.out_of_sync()


def test_every_notebook_names_its_kernel_and_the_gpu_chapter_asks_colab_for_a_gpu():
    for name in NOTEBOOKS:
        metadata = json.loads((ROOT / "notebooks" / name).read_text())["metadata"]
        assert metadata.get("kernelspec", {}).get("name") == "python3", name
    gpu = json.loads((ROOT / "notebooks" / "08_train_gpt1.ipynb").read_text())["metadata"]
    assert gpu["accelerator"] == "GPU" and gpu["colab"]["gpuType"] == "T4"


# --- the README's examples, run -------------------------------------------------------------

NEEDS_THE_NETWORK = "With the network"  # the sentence that introduces the online example
# Commands the offline test leaves out, and why (everything else runs as written).
NOT_HERE = {
    "openai-gpt": "needs the Hugging Face hub",
    "dataset=my.txt": "needs your own text (tests/test_own_text.py trains on one)",
    "--config t4": "needs TinyStories (a download) and a GPU-sized model",
    "torchrun": "needs several GPUs",
}


def _blocks(language: str) -> list[tuple[str, str]]:
    """(the text just before it, the code) of every fenced block of `language` in the README."""
    found = []
    for match in re.finditer(rf"```{language}\n(.*?)```", README, flags=re.S):
        found.append((README[max(0, match.start() - 200) : match.start()], match.group(1)))
    return found


def _library_commands() -> list[str]:
    """The `python -m gpt1_lib...` and `torchrun` lines of the README's shell examples."""
    lines = [ln for _, code in _blocks("bash") for ln in code.splitlines()]
    return [
        ln.split(" #")[0].strip()
        for ln in lines
        if ln.startswith(("python -m gpt1_lib", "torchrun"))
    ]


def _run_in(folder: Path, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(args, cwd=folder, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done


def test_the_readme_python_examples_run(tmp_path):
    """Every Python example runs as written, in a fresh folder; the online one where the hub
    is reachable."""
    from gpt1_lib.hub import hub_reachable

    blocks = _blocks("python")
    assert len(blocks) >= 2 and any(NEEDS_THE_NETWORK in before for before, _ in blocks)
    for before, code in blocks:
        if NEEDS_THE_NETWORK in before and not hub_reachable():
            continue
        (tmp_path / "example.py").write_text(code)
        _run_in(tmp_path, [sys.executable, "example.py"])
    assert (tmp_path / "my-gpt" / "config.json").is_file()
    assert (tmp_path / "my-run" / "tokenizer.json").is_file()


def test_the_readme_command_lines_run(tmp_path):
    """Each `python -m gpt1_lib...` line runs as written in order, a training run and a
    fine-tuning run stopped after a few updates (`--until`), so the sample and resume lines
    after them find what they need. Lines that need the network or GPUs are left out here."""
    commands = _library_commands()
    assert any("gpt1_lib.train" in c for c in commands) and any("finetune" in c for c in commands)
    until: dict[str, int] = {}
    ran = 0
    for command in commands:
        if any(mark in command for mark in NOT_HERE):
            continue
        args = shlex.split(command)
        if args[2] in ("gpt1_lib.train", "gpt1_lib.finetune"):
            out_dir = args[args.index("--out-dir") + 1]
            until[out_dir] = until.get(out_dir, 0) + 2  # a resume goes two updates further
            args += ["--until", str(until[out_dir])]
            if args[2] == "gpt1_lib.train":
                args += ["--no-progress"]
        _run_in(tmp_path, [sys.executable, *args[1:]])
        ran += 1
    assert ran >= 6, commands
    assert (tmp_path / "runs" / "ft" / "metrics.jsonl").is_file()
