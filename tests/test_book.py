"""The book as a website: `make book` builds it from the notebooks' committed outputs (nothing
runs), and headless Chromium reads every page the way a visitor does.

The site is built afresh into a temporary folder (so the log holds every page's warnings) and
served from 127.0.0.1, so images and links load as on the web. On every page of book/_toc.yml:
its title, every image loaded, the sidebar listing every chapter, no traceback or Sphinx error
box, the header's link to the repository (pyproject.toml's), each chapter's links to Colab and to
its notebook on GitHub, the equations' markup (MathJax itself comes from a CDN), and every link
into the site answering, anchors included. The build log has no warning.

The browser needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without
them these tests skip, unless GPT1_REQUIRE_BROWSER is set (`.ci/run` sets it): then they fail.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
REPO_URL = PROJECT["urls"]["Repository"]
REF = PYPROJECT["tool"]["gpt1_book"]["ref"]  # the version a reader's Colab opens
TOC = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
PAGES = [  # as the site names them: without a suffix
    Path(f).with_suffix("").as_posix()
    for f in [TOC["root"]] + [c["file"] for part in TOC["parts"] for c in part["chapters"]]
]
CHAPTERS = sorted(
    p.relative_to(ROOT).with_suffix("").as_posix()
    for p in ROOT.glob("notebooks/[0-9A][0-9]_*.ipynb")
)
# Images from the web: the Colab badge of the README and of chapter 08. Nothing else may be.
WEB_IMAGES = {"https://colab.research.google.com/assets/colab-badge.svg"}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
    # Offline by design, and the same everywhere: every host but this one fails at once.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
ERROR_BOXES = ".system-message, .problematic, .output.traceback, .output.error"


def markdown_title(page: str) -> str:
    """The first `# ` heading of a page's source, as the site shows it."""
    path = ROOT / page
    if path.with_suffix(".ipynb").exists():
        cells = json.loads(path.with_suffix(".ipynb").read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = path.with_suffix(".md").read_text()
    heading = re.search(r"^# (.+)$", text, re.MULTILINE).group(1)
    return re.sub(r"[`*]", "", heading).strip()


def equations_in_markdown(page: str) -> tuple[set[str], int]:
    """A notebook's Markdown equations: its inline `$...$` ones, and how many `$$...$$` ones."""
    path = ROOT / (page + ".ipynb")
    if not path.exists():
        return set(), 0
    cells = json.loads(path.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    text = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.DOTALL)  # code is not math
    display = len(re.findall(r"\$\$.+?\$\$", text, flags=re.DOTALL))
    text = re.sub(r"\$\$.+?\$\$", "", text, flags=re.DOTALL)
    return set(re.findall(r"(?<![\\$])\$([^$\n]+)\$", text)), display


# --- what the browser sees, and what is wrong with it --------------------------------------

READ_PAGE = """
const title = document.querySelector("main h1, article h1");
const h1 = title ? title.cloneNode(true) : null;
if (h1) h1.querySelectorAll(".headerlink").forEach(e => e.remove());
const same = u => u.startsWith(location.origin + "/");
return {
  title: h1 ? h1.textContent.replace(/\\s+/g, " ").trim() : null,
  images: [...document.images].map(i => ({src: i.currentSrc || i.src,
                                          loaded: i.complete && i.naturalWidth > 0})),
  sidebar: [...document.querySelectorAll("nav.bd-docs-nav a[href]")].map(a => a.href),
  header: [...document.querySelectorAll(".bd-header-article a[href]")].map(a => a.href),
  links: [...document.querySelectorAll("a[href]")].map(a => a.href),
  assets: [...document.querySelectorAll("link[href]")].map(l => l.href)
          .concat([...document.querySelectorAll("script[src]")].map(s => s.src))
          .filter(same),
  errors: [...document.querySelectorAll(arguments[0])].map(e => e.outerHTML.slice(0, 200)),
  text: document.body.innerText,
  math: [...document.querySelectorAll(".math")].map(e => e.textContent.trim()),
};
"""


def read_page(driver, url: str) -> dict:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete' && [...document.images].every(i => i.complete)"
        )
    )
    return driver.execute_script(READ_PAGE, ERROR_BOXES)


def page_problems(page: dict, title: str, chapter_urls: list[str]) -> list[str]:
    """What is wrong with a page the browser read (`read_page`); [] when nothing is."""
    problems = []
    if page["title"] != title:
        problems.append(f"title {page['title']!r}, not {title!r}")
    for image in page["images"]:
        if not image["loaded"] and image["src"] not in WEB_IMAGES:
            problems.append(f"image not loaded: {image['src']}")
    listed = [u for u in (urldefrag(s).url for s in page["sidebar"]) if u in chapter_urls]
    if listed != chapter_urls:
        problems.append(f"the sidebar lists {listed}, not every chapter {chapter_urls}")
    if "Traceback (most recent call last)" in page["text"]:
        problems.append("a Python traceback is shown")
    problems += [f"an error box: {box}" for box in page["errors"]]
    if REPO_URL not in page["header"]:
        problems.append(f"the header does not link the repository {REPO_URL}")
    return problems


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
            kind = response.headers.get_content_type()
            return response.status, body.decode("utf-8", "replace") if kind == "text/html" else ""
    except urllib.error.HTTPError as error:
        return error.code, ""


def broken_links(links: set[str], base: str) -> list[str]:
    """The links into the site at `base` that do not answer 200, or name a missing anchor."""
    pages: dict[str, tuple[int, str]] = {}
    broken = []
    for link in sorted(u for u in links if u.startswith(base)):
        url, anchor = urldefrag(link)
        if url not in pages:
            pages[url] = fetch(url)
        status, html = pages[url]
        if status != 200:
            broken.append(f"{link}: HTTP {status}")
        elif anchor and html and not re.search(rf"""\bid=["']{re.escape(anchor)}["']""", html):
            broken.append(f"{link}: no element with id {anchor!r}")
    return broken


# --- fixtures: the site, a server, a browser ------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, str]:
    """A fresh `make book` into a temporary folder: (the HTML folder, the build log)."""
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "book",
            "STAMP=",
            f"JUPYTER_BOOK={jupyter_book}",
            f"BOOK_DIR={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "_build" / "html", (out / "build.log").read_text()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve(folder: Path):
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=folder)
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture(scope="module")
def server(site):
    server, base = serve(site[0])
    yield base
    server.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    missing = not (chromium and driver_path)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing = True
    if missing:
        why = "headless Chromium needs Debian's chromium and chromium-driver, and selenium"
        if os.environ.get("GPT1_REQUIRE_BROWSER"):
            pytest.fail(why + " (GPT1_REQUIRE_BROWSER is set)")
        pytest.skip(why + ": apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


# --- the book's configuration ---------------------------------------------------------------


def test_the_book_holds_the_readme_every_chapter_in_order_and_contributing():
    assert PAGES[0] == "README"
    assert [p for p in PAGES if p.startswith("notebooks/")] == CHAPTERS
    assert "CONTRIBUTING" in PAGES


def test_the_book_extra_is_part_of_the_dev_extra():
    extras = PROJECT["optional-dependencies"]
    assert set(extras["book"]) <= set(extras["dev"])


def test_the_repository_url_is_read_from_pyproject_not_written_in_the_book_config():
    config = (ROOT / "book" / "_config.yml").read_text()
    assert "github.com" not in config


# --- the build --------------------------------------------------------------------------------


def test_the_build_runs_no_notebook_and_warns_of_nothing(site):
    html, log = site
    assert "build succeeded" in log, log
    warnings = [line for line in log.splitlines() if re.search(r"WARNING|ERROR|Traceback", line)]
    assert not warnings, "\n".join(warnings)
    assert "Executing" not in log  # the committed outputs are shown, not remade
    for page in PAGES:
        assert (html / f"{page}.html").is_file(), page


# --- the checks themselves: a made-up broken page must fail them ------------------------------


def test_the_checks_catch_a_broken_page(tmp_path, browser):
    (tmp_path / "ok.html").write_text('<p id="here">fine</p>')
    (tmp_path / "page.html").write_text(
        '<main><h1>Another title</h1><img src="missing.png">'
        '<a href="nowhere.html">x</a> <a href="ok.html#there">y</a> <a href="ok.html#here">z</a>'
        '<div class="system-message">ERROR/3</div>'
        "<pre>Traceback (most recent call last):</pre></main>"
    )
    server, base = serve(tmp_path)
    try:
        page = read_page(browser, base + "page.html")
        problems = page_problems(page, "The title", [base + "ch1.html"])
        broken = broken_links(set(page["links"]), base)
    finally:
        server.shutdown()
    found = "\n".join(problems + broken)
    for expected in (
        "title 'Another title'",
        "image not loaded",
        "the sidebar lists",
        "traceback",
        "an error box",
        "does not link the repository",
        "nowhere.html: HTTP 404",
        "no element with id 'there'",
    ):
        assert expected in found, f"{expected!r} not reported:\n{found}"
    assert "#here" not in found


# --- the site in a browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pages(site, server, browser) -> dict[str, dict]:
    return {page: read_page(browser, f"{server}{page}.html") for page in PAGES}


@pytest.mark.parametrize("page", PAGES)
def test_a_page_reads_well_in_a_browser(page, pages, server):
    chapter_urls = [f"{server}{c}.html" for c in CHAPTERS]
    problems = page_problems(pages[page], markdown_title(page), chapter_urls)
    assert not problems, f"{page}:\n" + "\n".join(problems)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_chapter_links_to_colab_and_to_its_notebook_on_github(chapter, pages):
    repo = REPO_URL.removeprefix("https://github.com/")
    links = set(pages[chapter]["links"])
    assert f"{REPO_URL}/blob/{REF}/{chapter}.ipynb" in links
    assert f"https://colab.research.google.com/github/{repo}/blob/{REF}/{chapter}.ipynb" in links


def test_the_equations_are_marked_up_for_mathjax(pages):
    """MathJax itself comes from a CDN (out of reach here): the page must hand it `\\(...\\)`."""
    found = 0
    for chapter in CHAPTERS:
        inline, display = equations_in_markdown(chapter)
        math = pages[chapter]["math"]
        shown = {m.removeprefix("\\(").removesuffix("\\)") for m in math if m.startswith("\\(")}
        assert inline <= shown, f"{chapter}: not marked up as math: {sorted(inline - shown)}"
        assert sum(m.startswith("\\[") for m in math) == display, chapter
        found += len(inline) + display
    assert found, "no chapter has an equation: this test would check nothing"


def test_every_link_inside_the_site_resolves(pages, server):
    links = {link for page in pages.values() for link in page["links"] + page["assets"]}
    assert any(link.startswith(server + "notebooks/") for link in links)
    broken = broken_links(links, server)
    assert not broken, "links into the site that do not resolve:\n" + "\n".join(broken)
