"""Hand-written Sphinx extension for the book's site (book/_config.yml loads it).

- The repository URL has one home, pyproject.toml's [project.urls] Repository: this reads it
  at build time and gives it to sphinx-book-theme (the header's repository button, each
  chapter's Colab launch button), and puts under each chapter's title a link to open it in
  Colab and one to its notebook on GitHub.
- A page's link to a repository file that is not a page of the book (`data/README.md`,
  `benchmarks/results/`) points at that file on GitHub instead of nowhere.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.transforms import SphinxTransform
from sphinx.transforms.post_transforms import SphinxPostTransform

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# The ref a reader's Colab opens and installs (tools/links.py): links to notebooks use it too.
BRANCH = PYPROJECT["tool"]["gpt1_book"]["ref"]


def repository_url() -> str:
    return PYPROJECT["project"]["urls"]["Repository"]


def set_repository(app: Sphinx, config: Config) -> None:
    config.book_repository_url = repository_url()  # a new URL re-reads every page
    config.html_theme_options = {
        **config.html_theme_options,
        "repository_url": repository_url(),
        "repository_branch": BRANCH,
    }


class NotebookLinks(SphinxTransform):
    """Under a chapter's title: Open in Colab and its notebook on GitHub.

    The Colab logo is sphinx-book-theme's copy, so the page shows it offline too.
    """

    default_priority = 500

    def apply(self, **kwargs) -> None:
        source = Path(self.document["source"]).resolve()
        section = next(iter(self.document.findall(nodes.section)), None)
        if source.suffix != ".ipynb" or section is None:
            return
        path = source.relative_to(ROOT).as_posix()
        repo = repository_url()
        colab = "https://colab.research.google.com/github/"
        colab += f"{repo.removeprefix('https://github.com/')}/blob/{BRANCH}/{path}"
        logo = "../" * self.env.docname.count("/") + "_static/images/logo_colab.png"
        html = (
            f'<p class="notebook-links"><a href="{colab}"><img src="{logo}" alt="" '
            'style="height:1.4em;vertical-align:middle"> Open in Colab</a> · '
            f'<a href="{repo}/blob/{BRANCH}/{path}">the notebook on GitHub</a></p>'
        )
        section.insert(1, nodes.raw("", html, format="html"))


class LinksOutsideTheBook(SphinxPostTransform):
    """A link to a repository path that is not a page becomes a link to it on GitHub.

    Runs before myst-parser resolves its links (priority 5 < 10), so myst never warns about them.
    """

    default_priority = 5

    def run(self, **kwargs) -> None:
        here = ROOT / PurePosixPath(self.env.docname).parent
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst":
                continue
            target = node["reftarget"]
            if node.get("refdomain") == "doc":  # a document's name from the root, no suffix
                if target not in self.env.all_docs:
                    found = [ROOT / (target + s) for s in (".md", ".ipynb")]
                    self._to_github(node, next((p for p in found if p.exists()), found[0]))
            elif re.fullmatch(r"[\w./-]+", target):  # a path, not a label
                self._to_github(node, (ROOT if target.startswith("/") else here) / target)
        for node in list(self.document.findall(addnodes.download_reference)):
            target = node["reftarget"]
            self._to_github(node, (ROOT if target.startswith("/") else here) / target)

    def _to_github(self, node: nodes.Element, path: Path) -> None:
        path = Path(str(path).rstrip("/")).resolve()
        if not path.exists() or ROOT not in path.parents:
            return  # not a file of the repository: left to Sphinx, which warns
        kind = "tree" if path.is_dir() else "blob"
        url = f"{repository_url()}/{kind}/{BRANCH}/{path.relative_to(ROOT).as_posix()}"
        link = nodes.reference("", "", refuri=url, internal=False)
        link.extend(child.deepcopy() for child in node.children)
        node.replace_self(link)


def setup(app: Sphinx) -> dict:
    app.add_config_value("book_repository_url", "", "env")
    app.connect("config-inited", set_repository)
    app.add_transform(NotebookLinks)
    app.add_post_transform(LinksOutsideTheBook)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
