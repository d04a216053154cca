"""Bad input fails the build and the tests, with a message naming the file and line.

Each test writes a small book into a temporary folder: this repository's
configuration (``_config.yml``, ``_ext/`` and everything else at the top
level, linked, not copied), a two-entry ``_toc.yml``, and tiny pages that
do not import torch. It builds it as the README and test_build.py do
(``jupyter-book build <book> -W -n --keep-going``) and runs the page-test
harness on it (test_pages.test_page, or test_build.toc_problems for the
table of contents), and checks both fail with a message that names the
file and the line or cell:

(a) a Python syntax error in a code cell;
(b) a cell that fails without the ``raises-exception`` tag;
(c) front matter that is not valid YAML;
(d) a reference to a label that does not exist;
(e) a file listed in ``_toc.yml`` that does not exist;
(f) a ``raises-exception`` cell that no longer raises, and one that raises
    another exception type than its ``:expect_error:``.

A correct small book is built first, so that a failure below cannot come
from the setup.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import test_build
import test_pages
from book_pages import (
    PAGE_FRONT_MATTER, build_book, execute_page, expected_error_problems, link_configuration,
    notebook_pages,
)

# Top-level entries of the repository that a small book does not take over.

FRONT_MATTER = PAGE_FRONT_MATTER.format(extra="")

INTRO = """\
(intro)=
# A small book

The page is {ref}`small-page`.
"""

# Lines 15, 20 and 24 open the code cells 0, 1 and 2.
PAGE = FRONT_MATTER + """
(small-page)=
# A small page

```{code-cell} ipython3
total = 1 + 1
print(total)
```

```{code-cell} ipython3
print(total * 2)
```

```{code-cell} ipython3
:tags: [raises-exception]
:expect_error: ZeroDivisionError

total / 0
```
"""


def small_book(folder: Path, page: str = PAGE, intro: str = INTRO,
               extra_toc: tuple[str, ...] = ()) -> Path:
    """A book in ``folder`` with the repository's configuration and two pages."""
    link_configuration(folder)
    (folder / "book" / "intro.md").write_text(intro, encoding="utf-8")
    (folder / "book" / "small-page.md").write_text(page, encoding="utf-8")
    chapters = ["book/small-page", *extra_toc]
    (folder / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n"
        + "".join(f"  - file: {chapter}\n" for chapter in chapters), encoding="utf-8")
    return folder


def warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL)\b:", line)]


def assert_build_fails(book: Path, *expected: str) -> None:
    """The build exits non-zero, and for each regular expression some warning matches."""
    returncode, log = build_book(book)
    shown = warnings(log)
    assert returncode != 0, f"the build passed:\n{log[-3000:]}"
    for pattern in expected:
        assert any(re.search(pattern, line) for line in shown), (
            f"no build warning matches {pattern!r}; the warnings were:\n" + "\n".join(shown))


def page_test_failure(page: Path) -> str:
    """Run the page test of tests/test_pages.py on ``page``; return its failure message."""
    with pytest.raises(pytest.fail.Exception) as failure:
        test_pages.test_page(page, update_references=False)
    return str(failure.value)


def at(page: Path, line: int) -> str:
    """The regular expression of a build message's location: ``/path/page.md:LINE:``."""
    return re.escape(f"{page}:{line}:")


def test_a_correct_small_book_builds_and_passes(tmp_path):
    book = small_book(tmp_path)
    returncode, log = build_book(book)
    assert returncode == 0 and not warnings(log), log[-3000:]
    page = book / "book" / "small-page.md"
    assert notebook_pages(book / "book") == [page]
    result = execute_page(page)
    assert result.exec_error is None
    assert expected_error_problems(result.notebook, page.name, page) == []


def test_a_syntax_error(tmp_path):
    book = small_book(tmp_path, PAGE.replace("print(total * 2)", "print(total * 2"))
    page = book / "book" / "small-page.md"
    assert_build_fails(book, at(page, 20) + " WARNING: code cell 1 raised SyntaxError",
                       re.escape(f"{page}: WARNING: Executing notebook failed"))
    message = page_test_failure(page)
    assert f"cell 1 (line 20 of {page}): 'print(total * 2' failed unexpectedly" in message
    assert "SyntaxError" in message


def test_a_failing_cell_without_the_tag(tmp_path):
    book = small_book(tmp_path, PAGE.replace("print(total * 2)", "print(totl * 2)"))
    page = book / "book" / "small-page.md"
    assert_build_fails(book, at(page, 20) + " WARNING: code cell 1 raised NameError: name 'totl'")
    message = page_test_failure(page)
    assert f"cell 1 (line 20 of {page}): 'print(totl * 2)' failed unexpectedly" in message
    assert "NameError: name 'totl' is not defined" in message


def test_broken_front_matter(tmp_path):
    broken = PAGE.replace("  name: python3\n", "   name: python3\n")  # line 9
    book = small_book(tmp_path, broken)
    page = book / "book" / "small-page.md"
    assert_build_fails(book, at(page, 9) + " WARNING: the front matter is not valid YAML: "
                       "mapping values are not allowed here")
    # the page is still collected by the tests, and its test fails naming file and line
    assert notebook_pages(book / "book") == [page]
    message = page_test_failure(page)
    assert message == f"{page}:9: the front matter is not valid YAML: mapping values are not allowed here"


def test_a_reference_to_a_missing_label(tmp_path):
    book = small_book(tmp_path, intro=INTRO.replace("{ref}`small-page`", "{ref}`no-such-page`"))
    intro = book / "book" / "intro.md"
    assert_build_fails(book, at(intro, 4) + " WARNING: undefined label: 'no-such-page'")


def test_a_missing_file_in_the_table_of_contents(tmp_path):
    book = small_book(tmp_path, extra_toc=("book/no-such-page",))
    assert_build_fails(book, "WARNING: toctree contains reference to nonexisting document "
                             "'book/no-such-page'")
    assert test_build.toc_problems(book) == [
        "_toc.yml lists book/no-such-page, but book/no-such-page.md does not exist"]


@pytest.mark.parametrize("source, build_message, test_message", [
    ("total / 1", "is tagged raises-exception and expects ZeroDivisionError, but it raised nothing",
     "expected ZeroDivisionError but the cell raised nothing"),
    ("{}['total']", "expects ZeroDivisionError but raised KeyError: 'total'",
     "expected ZeroDivisionError but it raised KeyError: 'total'"),
], ids=["no-longer-raises", "raises-another-type"])
def test_an_expected_error_that_changed(tmp_path, source, build_message, test_message):
    book = small_book(tmp_path, PAGE.replace("total / 0", source))
    page = book / "book" / "small-page.md"
    assert_build_fails(book, at(page, 24) + " WARNING: code cell 2 " + re.escape(build_message))
    with pytest.raises(AssertionError) as failure:
        test_pages.test_page(page, update_references=False)
    assert f"small-page.md, cell 2 (line 24 of {page}): {source!r}: {test_message}" in str(failure.value)
