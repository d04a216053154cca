"""Bad input fails the build and the tests, with a message naming the file
and line.

One small book in a temporary folder (this repository's configuration,
linked; pages that do not import torch) holds a correct page and one page
for each kind of mistake. It is built as README command (1) builds the
book, and the page checks of tests/test_pages.py run on each page:

- a Python syntax error in a code cell, and a cell that fails without the
  ``raises-exception`` tag;
- front matter that is not valid YAML;
- a ``raises-exception`` cell that no longer raises, and one that raises
  another exception type than its ``:expect_error:``;
- a reference to a label that does not exist, and a file listed in
  ``_toc.yml`` that does not exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from book_pages import (PAGE_FRONT_MATTER, build, ensure_executed,
                        page_problems, small_book, warnings)
from test_build import toc_problems

# Lines 15, 20 and 24 open the code cells 0, 1 and 2.
PAGE = PAGE_FRONT_MATTER + """
(LABEL)=
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

A link to {ref}`LABEL`.
"""
BROKEN = {name: text.replace("LABEL", name[:-3]) for name, text in {
    "correct.md": PAGE,
    "syntax.md": PAGE.replace("print(total * 2)", "print(total * 2"),
    "untagged.md": PAGE.replace("print(total * 2)", "print(totl * 2)"),
    "front-matter.md": PAGE.replace("  name: python3\n", "   name: python3\n"),
    "no-longer-raises.md": PAGE.replace("total / 0", "total / 1"),
    "another-type.md": PAGE.replace("total / 0", "{}['total']"),
    "missing-label.md": PAGE.replace("{ref}`LABEL`", "{ref}`no-such-page`"),
}.items()}
BUILD_MESSAGES = {
    "syntax.md": (20, "code cell raised SyntaxError"),
    "untagged.md": (20, "code cell raised NameError: name 'totl'"),
    "front-matter.md": (9, "the front matter is not valid YAML: mapping "
                           "values are not allowed here"),
    "no-longer-raises.md": (24, "code cell expects ZeroDivisionError, but "
                                "it raised nothing"),
    "another-type.md": (24, "code cell expects ZeroDivisionError but raised "
                            "KeyError: 'total'"),
    "missing-label.md": (31, "undefined label: 'no-such-page'"),
}
TEST_MESSAGES = {
    "syntax.md": "code cell 1 (line 20 of {page}): 'print(total * 2' failed "
                 "unexpectedly:\nSyntaxError",
    "untagged.md": "code cell 1 (line 20 of {page}): 'print(totl * 2)' failed"
                   " unexpectedly:\nNameError: name 'totl' is not defined",
    "front-matter.md": "{page}:9: the front matter is not valid YAML: "
                       "mapping values are not allowed here",
    "no-longer-raises.md": "code cell 2 (line 24 of {page}): 'total / 1': "
                           "expected ZeroDivisionError but the cell raised "
                           "nothing",
    "another-type.md": "code cell 2 (line 24 of {page}): \"{{}}['total']\": "
                       "expected ZeroDivisionError but it raised KeyError: "
                       "'total'",
}


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> tuple[Path, str]:
    folder = small_book(tmp_path_factory.mktemp("bad"), BROKEN)
    with (folder / "_toc.yml").open("a") as toc:
        toc.write("  - file: book/no-such-page\n")
    returncode, log = build(folder)
    assert returncode != 0, f"the build passed:\n{log[-3000:]}"
    return folder, log


def test_the_correct_page_passes(book):
    folder, log = book
    page = folder / "book" / "correct.md"
    assert not [line for line in warnings(log) if str(page) in line]
    assert page_problems(page, cache(folder), references=False) == []


@pytest.mark.parametrize("name", sorted(BUILD_MESSAGES))
def test_the_build_names_the_file_and_line(book, name):
    folder, log = book
    line, message = BUILD_MESSAGES[name]
    expected = re.escape(f"{folder / 'book' / name}:{line}: WARNING: {message}")
    assert any(re.search(expected, w) for w in warnings(log)), (
        f"no build warning matches {expected!r}; the warnings were:\n"
        + "\n".join(warnings(log)))


@pytest.mark.parametrize("name", sorted(TEST_MESSAGES))
def test_the_page_test_names_the_file_and_line(book, name):
    folder, _ = book
    page = folder / "book" / name
    problems = page_problems(page, cache(folder), references=False)
    expected = TEST_MESSAGES[name].format(page=page)
    assert any(expected in problem for problem in problems), problems


def test_a_missing_file_in_the_table_of_contents(book):
    folder, log = book
    assert any("toctree contains reference to nonexisting document "
               "'book/no-such-page'" in w for w in warnings(log))
    assert toc_problems(folder) == [
        "_toc.yml lists book/no-such-page.md, which does not exist"]


def cache(folder: Path) -> Path:
    return ensure_executed([], folder / "_build")
