"""The execution cache notices a change to code that a page loads from another page.

A tiny book in a temporary folder: ``engine.md`` defines a function in a
cell tagged ``engine``; ``user.md`` loads it (as the forward-vs-reverse page
loads the Part I engines) and names ``engine.md`` under ``depends_on``.
"""

import shutil
import textwrap

import pytest
from jupyter_cache import get_cache

from book_pages import ROOT, build_book

FRONT = """\
---
jupytext:
  text_representation: {{extension: .md, format_name: myst}}
kernelspec: {{display_name: Python 3, language: python, name: python3}}
{extra}---
"""
ENGINE = FRONT.format(extra="") + textwrap.dedent("""
    # Engine

    Some prose.

    ```{code-cell} ipython3
    :tags: [engine]

    def double(x):
        return 2 * x
    ```
    """)
USER = FRONT.format(extra="depends_on:\n  - engine.md\n") + textwrap.dedent("""
    # User

    ```{code-cell} ipython3
    import jupytext

    cells = jupytext.read("engine.md").cells
    namespace = {}
    exec("\\n".join(c.source for c in cells if "engine" in c.metadata.get("tags", [])), namespace)
    print(namespace["double"](21))
    ```
    """)


def executions(book):
    """When each page was last executed, from the execution cache."""
    cache = get_cache(book / "_build" / ".jupyter_cache")
    return {record.uri.rsplit("/", 1)[-1]: record.created for record in cache.list_cache_records()}


@pytest.fixture
def tiny_book(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(ROOT / "_config.yml", book / "_config.yml")
    shutil.copytree(ROOT / "_ext", book / "_ext")
    (book / "references.bib").write_text((ROOT / "book" / "references.bib").read_text())
    config = (book / "_config.yml").read_text().replace("book/references.bib", "references.bib")
    (book / "_config.yml").write_text(config)
    (book / "_toc.yml").write_text("format: jb-book\nroot: engine\nchapters:\n  - file: user\n")
    (book / "engine.md").write_text(ENGINE)
    (book / "user.md").write_text(USER)
    return book


def build(book):
    code, log = build_book(book)
    assert code == 0, log[-3000:]
    return executions(book)


def test_changed_dependency_code_reexecutes_the_page(tiny_book):
    first = build(tiny_book)
    assert set(first) == {"engine.md", "user.md"}

    (tiny_book / "engine.md").write_text(ENGINE.replace("Some prose.", "Other prose."))
    assert build(tiny_book) == first, "a change of prose re-executed a page"

    (tiny_book / "engine.md").write_text(ENGINE.replace("2 * x", "x + x"))
    third = build(tiny_book)
    assert third["engine.md"] > first["engine.md"]
    assert third["user.md"] > first["user.md"], "user.md was not re-executed"
