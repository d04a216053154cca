"""Numbers in the prose come from the code (myst-nb glue), never typed by hand.

- No number with three or more decimals (``2.579``, ``0.3125``, ``.125``)
  may appear in a page's prose unless it is glued. Prose is every line
  outside code cells and code fences, including inline and display maths
  (``$x = 0.3125$`` is a claim like any other), directive bodies such as
  exercises, and the caption and alt text of figures; code spans and roles
  (``{glue:text}`name:.4f```, ```x.grad```) are not prose. ``1e-3`` and
  ``0.25`` have fewer than three decimals and pass: they are almost always
  inputs the page chose, not results.
- Every glue name the prose uses is glued by a code cell of the same page
  (myst-nb can only paste within a page), and no name is glued by two pages.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

from tools.pages import ROOT

BOOK = ROOT / "book"
from myst_source import call_name, Page, parse, python_tree, read_page, without_code

# A decimal number with three or more digits after the point, not part of a
# longer dotted string (a version such as 2.13.0, a section number).
NUMBER = re.compile(r"(?<![\w.])\d*\.\d{3,}(?!\.?\d)")

# Numbers the prose may state by hand because they are definitions, not
# results: (page file name, number as written) -> why it is allowed.
# Example of an entry:
#   ("gradient-descent.md", "0.005"): "the step size the exercise prescribes",
# An entry that no longer matches anything on its page fails the test, so the
# list cannot go stale.
ALLOWED: dict[tuple[str, str], str] = {}

GLUE_ROLE = re.compile(r"\{glue(?::[\w-]*)?\}(`+)(?P<content>.+?)\1")
GLUE_DIRECTIVES = {"glue", "glue:", "glue:any", "glue:figure", "glue:math", "glue:md", "glue:text"}


def book_pages() -> list[Path]:
    return sorted(p for p in BOOK.rglob("*.md") if "_build" not in p.parts)


def where(page: Page, line: int) -> str:
    try:
        name = page.path.relative_to(ROOT)
    except ValueError:
        name = page.path
    return f"{name}:{line}"


# --- hand-typed numbers -----------------------------------------------------


def hand_typed_numbers(page: Page, allowed: dict = ALLOWED) -> list[str]:
    """``path:line: number`` for every unglued number with three or more decimals."""
    problems, used = [], set()
    for line, text in page.prose:
        for match in NUMBER.finditer(without_code(text)):
            key = (page.path.name, match.group())
            if key in allowed:
                used.add(key)
                continue
            problems.append(f"{where(page, line)}: {match.group()}   ({text.strip()})")
    for key in allowed:
        if key[0] == page.path.name and key not in used:
            problems.append(f"{page.path.name}: allow-list entry {key[1]!r} no longer appears; remove it")
    return problems


@pytest.mark.parametrize("path", book_pages(), ids=lambda p: p.name)
def test_no_hand_typed_numbers_in_prose(path):
    problems = hand_typed_numbers(read_page(path))
    if problems:
        pytest.fail("numbers in the prose must be glued from code ({glue:text}`name:.4f`), "
                    "or allow-listed in tests/test_prose_numbers.py if they are definitions:\n"
                    + "\n".join(problems), pytrace=False)


# --- glue names --------------------------------------------------------------


def glue_uses(page: Page) -> list[tuple[int, str]]:
    """(line, name) of every glue role and glue directive in the prose."""
    uses = []
    for line, text in page.prose:
        for match in GLUE_ROLE.finditer(text):
            content = match["content"].strip()
            uses.append((line, content.split("::")[-1].split(":")[0].strip()))
    for block in page.blocks:
        if block.name in GLUE_DIRECTIVES:
            uses.append((block.line, block.argument.split("::")[-1].strip()))
    return uses


def glue_definitions(page: Page) -> tuple[list[tuple[int, str, re.Pattern]], list[str]]:
    """(line, name as written, pattern) of every ``glue(...)`` call in the code cells.

    A name built by an f-string (``glue(f"fvr_r_{tag}", ...)``) matches any
    text in place of its replacement fields. Returns the definitions and the
    problems (a call whose name is neither a string nor an f-string).
    """
    definitions, problems = [], []
    for cell in page.code_cells:
        try:
            tree = python_tree(cell.source)
        except SyntaxError:
            continue  # a broken cell fails the page's execution test
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and call_name(node.func) == "glue" and node.args):
                continue
            line = cell.body[0][0] + node.lineno - 1 if cell.body else cell.line
            name = node.args[0]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                definitions.append((line, name.value, re.compile(re.escape(name.value))))
            elif isinstance(name, ast.JoinedStr):
                parts = [re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in name.values]
                written = "".join(v.value if isinstance(v, ast.Constant) else "{...}" for v in name.values)
                definitions.append((line, written, re.compile("".join(parts))))
            else:
                problems.append(f"{where(page, line)}: glue name is not a string literal: "
                                f"{ast.unparse(name)}")
    return definitions, problems


def undefined_glue(page: Page) -> list[str]:
    definitions, problems = glue_definitions(page)
    for line, name in glue_uses(page):
        if not any(pattern.fullmatch(name) for _, _, pattern in definitions):
            problems.append(f"{where(page, line)}: {{glue}} uses {name!r}, which no code cell "
                            f"of this page glues")
    return problems


def duplicate_glue(pages: list[Page]) -> list[str]:
    """Glue names defined on more than one page (literal names, or an
    f-string of one page matching a literal name, or the literal prefix of
    another f-string, of another page)."""
    by_page = {page.path: glue_definitions(page)[0] for page in pages}
    owners = defaultdict(set)
    for path, definitions in by_page.items():
        for line, written, pattern in definitions:
            owners[written].add((path, line))
    problems = []
    for written, places in sorted(owners.items()):
        if len({path for path, _ in places}) > 1:
            problems.append(f"glue name {written!r} is defined on several pages: "
                            + ", ".join(f"{p.relative_to(ROOT)}:{n}" for p, n in sorted(places)))
    for path, definitions in by_page.items():
        for line, written, pattern in definitions:
            if "{...}" not in written:
                continue
            prefix = written.split("{...}")[0]
            for other, other_definitions in by_page.items():
                if other == path:
                    continue
                for other_line, other_written, _ in other_definitions:
                    clash = pattern.fullmatch(other_written) if "{...}" not in other_written \
                        else other_written.split("{...}")[0].startswith(prefix) \
                        or prefix.startswith(other_written.split("{...}")[0])
                    if clash:
                        problems.append(
                            f"glue name {written!r} ({path.relative_to(ROOT)}:{line}) can clash "
                            f"with {other_written!r} ({other.relative_to(ROOT)}:{other_line})")
    return problems


@pytest.mark.parametrize("path", book_pages(), ids=lambda p: p.name)
def test_every_glued_name_is_defined_on_its_page(path):
    problems = undefined_glue(read_page(path))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_glue_names_are_unique_across_the_book():
    problems = duplicate_glue([read_page(p) for p in book_pages()])
    if problems:
        pytest.fail("glue names must be unique across the book (prefix them with a page tag):\n"
                    + "\n".join(problems), pytrace=False)


# --- the checks themselves, on small made-up pages -----------------------------

SAMPLE = """\
---
kernelspec:
  name: python3
---

(sample)=
# Sample

The result is 2.579 and $z = 0.3125$, but the glued
{glue:text}`sample_z:.4f` and `print(1.2345)` and 1e-3 and 4.25 and
version 2.13.0 are fine, and so is [a link](https://example.org/1.2345).

```{code-cell} ipython3
---
mystnb:
  figure:
    caption: A curve through 0.7071.
---
x = 1.23456
glue("sample_z", x)
glue(f"sample_{x}_fig", x)
```

````{exercise}
:label: ex-sample

Find 3.14159.

```python
y = 2.71828
```
````

<!-- 9.87654 in a comment -->
{glue:text}`sample_missing` and {glue:text}`sample_1_fig:.2f`.
"""


def test_the_scan_finds_hand_typed_numbers_and_nothing_else():
    page = parse(SAMPLE, ROOT / "sample.md")
    numbers = [p.split(": ")[1].split()[0] for p in hand_typed_numbers(page, allowed={})]
    assert numbers == ["2.579", "0.3125", "0.7071", "3.14159"]
    allowed = {("sample.md", "0.7071"): "test", ("sample.md", "1.111"): "stale"}
    problems = hand_typed_numbers(page, allowed=allowed)
    assert not any("0.7071" in p for p in problems)
    assert any("'1.111' no longer appears" in p for p in problems)


def test_the_glue_checks_find_undefined_and_duplicate_names():
    page = parse(SAMPLE, ROOT / "sample.md")
    problems = undefined_glue(page)
    assert len(problems) == 1 and "sample.md:35: {glue} uses 'sample_missing'" in problems[0]
    other = parse("```{code-cell} ipython3\nglue('sample_z', 1)\nglue('sample_abc_fig', 2)\n```\n",
                  ROOT / "other.md")
    duplicates = duplicate_glue([page, other])
    assert any("'sample_z' is defined on several pages" in p for p in duplicates)
    assert any("'sample_{...}_fig'" in p and "'sample_abc_fig'" in p for p in duplicates)
