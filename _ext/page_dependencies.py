"""Make the execution cache notice changes in code a page reads from other pages.

Jupyter Book's cache (jupyter-cache, through MyST-NB) keys a page on its own
code cells only. A page that runs code kept in another page (the Part I
engines, loaded by ``load_engine``) lists those pages in its front matter::

    depends_on:
      - forward-mode-dual-numbers.md

Before MyST-NB reads such a page, this extension appends one hidden code
cell holding a fingerprint of the code cells of the pages it depends on.
The cell only holds comments, so running it does nothing; but when the code
of a dependency changes, the fingerprint changes, the page's cache key
changes with it, and the page is executed again. A change to the prose of a
dependency makes Sphinx read the page again but finds it in the cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import jupytext
import yaml


def front_matter(text: str) -> dict:
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    try:
        return (yaml.safe_load(text[4:end]) or {}) if end != -1 else {}
    except yaml.YAMLError:  # _ext/page_checks.py reports it, with its line
        return {}


def code_fingerprint(page: Path) -> str:
    """A hash of a page's code cells (their source and tags), in order."""
    digest = hashlib.sha256()
    for cell in jupytext.read(page).cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode())
            digest.update(repr(cell.metadata.get("tags", [])).encode())
    return digest.hexdigest()[:16]


def fingerprint_cell(page: Path, dependencies: list[str]) -> str:
    lines = [f"# {name}: {code_fingerprint(page.parent / name)}" for name in dependencies]
    return (
        "\n```{code-cell} ipython3\n:tags: [remove-cell]\n\n"
        "# Code this page runs from other pages (see _ext/page_dependencies.py):\n"
        + "\n".join(lines) + "\n```\n"
    )


def add_fingerprint(app, docname: str, source: list[str]) -> None:
    path = Path(app.env.doc2path(docname))
    if path.suffix != ".md":
        return
    dependencies = front_matter(source[0]).get("depends_on") or []
    for name in dependencies:
        # Sphinx reads this page again whenever a page it depends on changes.
        app.env.note_dependency(str(path.parent / name))
    if dependencies:
        source[0] = source[0].rstrip("\n") + "\n" + fingerprint_cell(path, dependencies)


def setup(app):
    app.connect("source-read", add_fingerprint)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
