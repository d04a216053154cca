"""The learner notebooks (book/**/<page>.ipynb): current, clean, and runnable on their own.

Colab opens these notebooks from the repository; this machine cannot reach
Colab, so the tests check what Colab would need: the notebook is the one
``python -m tools.learner_notebooks`` makes from the page now, it imports
nothing beyond the standard library, torch, numpy and matplotlib (or installs
it in its first cell), and it runs in a fresh kernel in an empty folder:
clean up to its first exercise stub, each stub raising NotImplementedError,
and to the end with the page's own solutions put in place of the stubs.
"""

from __future__ import annotations

import re
import sys

import nbformat
import pytest

from book_pages import PAGE_FRONT_MATTER
from launch_helpers import NotebookRunError, run_learner_notebook
from tools import learner_notebooks as learner
from tools.pages import ROOT, notebook_pages

PAGES = notebook_pages()


def page_id(page):
    return page.name


REGENERATE = f"Make the learner notebooks again with:\n  {learner.COMMAND}"
MACHINE_PATH = re.compile(r"(/work/|/root/|/home/|/tmp/|/Users/|site-packages|[A-Z]:\\\\)")
MYST_LEFTOVER = re.compile(r"(?<!`)\{[a-z][\w:-]*\}`|^\s*(```+|:::+)\{|^\([\w.-]+\)=\s*$|^:label:", re.M)


@pytest.fixture(scope="module")
def book():
    return learner.current_book()


def committed(page):
    path = learner.learner_path(page)
    assert path.exists(), f"{path.relative_to(ROOT)} is missing. {REGENERATE}"
    return path


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_learner_notebook_is_current(page, book, cache):
    """The committed notebook is what the page makes now (glued numbers may
    differ by float noise: another CPU made it)."""
    committed(page)
    stale = learner.stale_notebooks([page], book)
    assert not stale, "\n".join(f"{path.relative_to(ROOT)} {why}"
                                for path, why in stale) + f"\n{REGENERATE}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_learner_notebook_is_plain_and_clean(page):
    path = committed(page)
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    name = path.relative_to(ROOT)
    problems = []
    if "jupytext" in notebook.metadata:
        problems.append("has jupytext metadata (it could be paired with the page)")
    if notebook.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append("has no python3 kernelspec")
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            problems.append(f"cell {index} has outputs or an execution count")
        if MACHINE_PATH.search(cell.source):
            problems.append(f"cell {index} names a machine path: {MACHINE_PATH.search(cell.source)[0]!r}")
        if cell.cell_type == "markdown" and MYST_LEFTOVER.search(cell.source):
            problems.append(f"cell {index} keeps MyST syntax: {MYST_LEFTOVER.search(cell.source)[0]!r}")
    solutions = [code for _, code in learner.solutions(page) if code]
    stubs = [c for c in notebook.cells if c.cell_type == "code"
             and learner.ANSWER in c.metadata.get("tags", [])]
    if len(stubs) != len(solutions):
        problems.append(f"has {len(stubs)} answer cells for the page's {len(solutions)} "
                        "solutions with code")
    for _, code in learner.solutions(page):
        for source in code:
            if any(c.source == source for c in notebook.cells):
                problems.append(f"shows solution code: {source.splitlines()[0]!r}")
    exercises = sum(c.source.count("**Exercise ") for c in notebook.cells if c.cell_type == "markdown")
    if exercises < len(learner.solutions(page)):
        problems.append(f"shows {exercises} exercise headings for {len(learner.solutions(page))} solutions")
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_learner_notebook_needs_nothing_colab_lacks(page):
    notebook = nbformat.read(committed(page), as_version=4)
    imported = learner.imported_modules(notebook.cells)
    installs = notebook.cells[1].source if len(notebook.cells) > 1 else ""
    missing = sorted(
        m for m in imported
        if m not in sys.stdlib_module_names and m not in learner.PREINSTALLED
        and not re.search(rf"\(\s*'{m}',\s*'[\w.-]+==[\w.+-]+'\s*\)", installs)
    )
    assert not missing, (
        f"{page.name}'s learner notebook imports {missing}, which Colab may lack and its first cell "
        f"does not install (pinned). {REGENERATE}")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_learner_notebook_runs_on_its_own(page, tmp_path):
    """Stubs raise NotImplementedError; with the page's solutions in place of
    the answer cells (stubs and skeletons), it runs to the end.

    The kernel runs in an empty temporary folder, so nothing next to the page
    (other pages, data files) can help it, as in Colab.
    """
    notebook = nbformat.read(committed(page), as_version=4)
    solutions = [code for _, code in learner.solutions(page) if code]
    try:
        stubs, problem = run_learner_notebook(notebook, solutions, tmp_path, learner.learner_path(page).name), None
    except NotebookRunError as error:
        stubs, problem = None, str(error)
    if problem:
        pytest.fail(problem, pytrace=False)  # outside `except`: no chained traceback
    assert stubs == len(solutions), f"ran {stubs} stubs, the page has {len(solutions)} solutions with code"


# --- The converter on small books made for the test --------------------------------------

CONFIG = """\
title: Test
repository:
  url: https://github.com/Some-Org/some-book
bibtex_bibfiles:
  - book/references.bib
"""
TOC = """\
format: jb-book
root: book/intro
chapters:
  - file: book/one
  - file: book/two
"""
FRONT = PAGE_FRONT_MATTER
BIB = """\
@article{smith2001,
  author = {Smith, Ann and Jones, Bob and Lee, Cy},
  title = {A title},
  journal = {A Journal},
  year = {2001}
}
"""


def write_book(root, one: str, two: str):
    (root / "book").mkdir()
    (root / "_config.yml").write_text(CONFIG)
    (root / "_toc.yml").write_text(TOC)
    (root / "book" / "references.bib").write_text(BIB)
    (root / "book" / "intro.md").write_text("(intro)=\n# Intro\n")
    (root / "book" / "one.md").write_text(FRONT + one)
    (root / "book" / "two.md").write_text(FRONT + two)
    return learner.Book(root)


PAGE_ONE = """
(one)=
# Page one

(one-section)=
## A section

$$
y = 2x
$$ (eq-one)

```{exercise}
:label: ex-one

Store twice three in `six`.
```
"""

PAGE_TWO = """
(two)=
# Page two

As {ref}`one-section` and {eq}`eq-one` show, and {cite:p}`smith2001` says,
{cite:t}`smith2001` found {glue:text}`two_value:.2f`; see {ref}`ex-one`
and {numref}`fig-two`. Inline code `{ref}` stays.

:::{note}
Be careful with {eq}`eq-two`.
:::

$$
z = 3
$$ (eq-two)

```{code-cell} ipython3
:tags: [remove-cell]

try:
    from myst_nb import glue
except ModuleNotFoundError:  # a stand-in of another shape than the pages'
    glue = print
```

```{code-cell} ipython3
:tags: [TAGS]

glue("two_value", 3.14159, display=False)
```

```{code-cell} ipython3
---
mystnb:
  figure:
    caption: A figure of {eq}`eq-two`.
    name: fig-two
---
print("figure")
```

````{exercise} Counting
:label: ex-two

Compute `answer`:

```python
answer = ...
```
````

```{solution-start} ex-two
:class: dropdown
```

Secret explanation.

```{code-cell} ipython3
answer = 42
```

```{code-cell} ipython3
answer += 0
```

```{solution-end}
```

```{code-cell} ipython3
assert answer == 42
```

````{exercise}
:label: ex-three

Fill in `double`:

```{code-block} python
:class: skeleton

def double(x):
    return ...  # your code
```
````

```{solution-start} ex-three
:class: dropdown
```

```{code-cell} ipython3
def double(x):
    return 2 * x
```

```{solution-end}
```

```{code-cell} ipython3
assert double(21) == 42
```
"""


def test_conversion_of_a_small_page(tmp_path):
    book = write_book(tmp_path, PAGE_ONE, PAGE_TWO.replace("TAGS", "remove-cell"))
    notebook = learner.learner_notebook(tmp_path / "book" / "two.md", book)
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    url = "https://some-org.github.io/some-book/book/one.html"
    assert f"[A section]({url}#one-section)" in markdown
    assert f"[(1)]({url}#equation-eq-one)" in markdown  # another page's equation, numbered as in the book
    assert "(Smith et al., 2001)" in markdown and "Smith et al. (2001) found 3.14" in markdown
    assert f"[Exercise 1]({url}#ex-one)" in markdown and "Fig. 1" in markdown
    assert "Inline code `{ref}` stays." in markdown
    assert "> **Note**\n>\n> Be careful with (2)." in markdown
    assert "$$\nz = 3\n\\tag{2}\n$$" in markdown
    assert "**Fig. 1.** A figure of (2)." in markdown
    assert "**Exercise 2 (Counting)**" in markdown and "```python\nanswer = ...\n```" in markdown
    assert "Secret explanation" not in markdown and "Solution to" not in markdown
    assert code.count(learner.STUB) == 1 and "answer = 42" not in code  # two solution cells, one stub
    answers = [c for c in notebook.cells if learner.ANSWER in c.metadata.get("tags", [])]
    assert [c.source for c in answers] == [learner.STUB, code[-2]]
    assert code[-3] == "assert answer == 42"  # the self-check is kept
    assert code[-2] == "def double(x):\n    return ...  # your code"  # the skeleton
    assert "Fill in `double`:" in markdown and "return ..." not in markdown
    assert not any("glue" in c for c in code)  # no bookkeeping
    assert "## References" in markdown and "Ann Smith, Bob Jones, and Cy Lee" in markdown
    assert "(two)=" not in markdown and "# Page two" in notebook.cells[0].source
    assert learner.solutions(tmp_path / "book" / "two.md")[0] == ("ex-two", ["answer = 42", "answer += 0"])


@pytest.mark.parametrize("code, kept", [
    ('x = 1\nglue("x", x, display=False)\nprint(x)', "x = 1\nprint(x)"),
    ('for k in "ab":\n    glue(k, 1)', ""),
    ("try:\n    from myst_nb import glue\nexcept ModuleNotFoundError:\n"
     "    def glue(name, value, display=True):\n        pass\n\n%xmode Minimal",
     "%xmode Minimal"),
    ("for k in 'ab':\n    glue(k, 1)\n    print(k)", None),
    ("glued = glue_like(1)", None),
])
def test_only_bookkeeping_leaves_the_code(code, kept):
    assert learner.without_bookkeeping(code) == (code if kept is None else kept)


def test_measured_values_are_marked_not_invented(tmp_path):
    book = write_book(tmp_path, PAGE_ONE,
                      PAGE_TWO.replace("TAGS", "remove-cell, timing"))
    markdown = "\n".join(c.source for c in learner.learner_notebook(tmp_path / "book" / "two.md", book).cells
                         if c.cell_type == "markdown")
    assert f"found {learner.MEASURED};" in markdown and learner.MEASURED_NOTE in markdown


def test_a_missing_glue_value_is_refused(tmp_path):
    book = write_book(tmp_path, PAGE_ONE, PAGE_TWO.replace(
        "TAGS", "remove-cell").replace('glue("two_value"', 'glue("other"'))
    with pytest.raises(learner.ConversionError, match=r"glues no value 'two_value'"):
        learner.learner_notebook(tmp_path / "book" / "two.md", book)


def test_an_unknown_directive_is_refused(tmp_path):
    book = write_book(tmp_path, PAGE_ONE, "# Two\n\n```{mermaid}\ngraph\n```\n")
    with pytest.raises(learner.ConversionError, match=r"book/two.md: directive \{mermaid\}"):
        learner.learner_notebook(tmp_path / "book" / "two.md", book)


def test_other_packages_are_installed_pinned_only_where_missing(tmp_path):
    book = write_book(tmp_path, PAGE_ONE, "# Two\n\n```{code-cell} ipython3\nimport yaml\n```\n")
    with pytest.raises(learner.ConversionError, match=r"(?s)imports yaml.*pin it exactly"):
        learner.learner_notebook(tmp_path / "book" / "two.md", book)
    (tmp_path / "requirements.txt").write_text("PyYAML==6.0.2  # a reason\n")
    notebook = learner.learner_notebook(tmp_path / "book" / "two.md", book)
    first = notebook.cells[1].source
    assert "('yaml', 'PyYAML==6.0.2')" in first and "find_spec(module) is None" in first
