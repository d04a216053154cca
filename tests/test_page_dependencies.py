"""The execution cache notices a change to code that a page loads from another page.

A tiny book in a temporary folder: ``engine.md`` defines a function in a
cell tagged ``engine``; ``user.md`` loads it (as the forward-vs-reverse page
loads the Part I engines) and names ``engine.md`` under ``depends_on``.
"""

import textwrap

import pytest
from jupyter_cache import get_cache

from book_pages import build_book, link_configuration

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


def executions(pages):
    """When each page was last executed, from the execution cache."""
    cache = get_cache(pages.parent / "_build" / ".jupyter_cache")
    return {record.uri.rsplit("/", 1)[-1]: record.created for record in cache.list_cache_records()}


@pytest.fixture
def tiny_book(tmp_path):
    link_configuration(tmp_path)
    pages = tmp_path / "book"
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/engine\nchapters:\n  - file: book/user\n")
    (pages / "engine.md").write_text(ENGINE)
    (pages / "user.md").write_text(USER)
    return pages


def build(pages):
    code, log = build_book(pages.parent)
    assert code == 0, log[-3000:]
    return executions(pages)


def test_changed_dependency_code_reexecutes_the_page(tiny_book):
    first = build(tiny_book)
    assert set(first) == {"engine.md", "user.md"}

    (tiny_book / "engine.md").write_text(ENGINE.replace("Some prose.", "Other prose."))
    assert build(tiny_book) == first, "a change of prose re-executed a page"

    (tiny_book / "engine.md").write_text(ENGINE.replace("2 * x", "x + x"))
    third = build(tiny_book)
    assert third["engine.md"] > first["engine.md"]
    assert third["user.md"] > first["user.md"], "user.md was not re-executed"
