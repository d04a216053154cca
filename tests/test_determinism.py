"""A page run twice prints the same normalised outputs.

The stored outputs (tests/references/) can only catch regressions if a page
prints the same thing on every run. The page checked is
differentiating-randomness.md: of all the pages it draws the most random
numbers (Monte Carlo estimators over 10^5 samples, ``rsample`` and
``sample``, score-function estimates and their variances, all glued into
the prose at full precision), and its large float32 reductions are the ones
seen to change with the number of threads (see
_ext/kernel_environment.py). A missing seed, a generator seeded in the wrong
cell, an iteration over a set, a time stamp or a thread-count dependence
shows up here as a diff naming the cell.

The second run uses another PYTHONHASHSEED than the fixed one of the build
and the tests, so that fixing the seed cannot hide a page that depends on
the order of a set or a dict built from one. Timings and memory addresses
are normalised away as in the stored outputs (tests/book_pages.py).

When this test was written every page was run four times (twice, then
with 1 and 4 threads): only forward-vs-reverse.md differed between runs
(its measured timings, since tagged ``timing`` and normalised), and
differentiating-randomness.md between 1 thread and 2. With the kernel
environment fixed, all ten pages then gave identical outputs twice.
"""

from __future__ import annotations

from pathlib import Path

from book_pages import BOOK, execute_page, normalised_notebook, notebook_difference, strip_ansi

PAGE = BOOK / "part2-pytorch" / "differentiating-randomness.md"


def run_twice(page: Path) -> str:
    """Run ``page`` twice; return the difference of the outputs ('' if none).

    The first run is the one the build and the page tests use (taken from
    the execution cache when the page's code has run before, else executed
    now in a kernel of tools/warm_kernel.py); the second is always a new
    kernel started by pytest-notebook, with another hash seed. So the test
    also sees a difference between the two ways a page is executed.
    """
    runs = []
    for env in (None, {"PYTHONHASHSEED": "1"}):
        result = execute_page(page, env=env)
        if result.exec_error is not None:
            return f"{page.name}: the page failed to run\n{strip_ansi(str(result.exec_error))}"
        runs.append(normalised_notebook(result.notebook))
    return notebook_difference(page, runs[0], runs[1], "the first run")


def test_a_page_gives_the_same_outputs_on_every_run():
    difference = run_twice(PAGE)
    assert not difference, f"two runs of the same page differ:\n{difference}"


def test_the_comparison_sees_an_unseeded_page(tmp_path):
    """The check itself: a page with unseeded randomness and set order fails it."""
    page = tmp_path / "unseeded.md"
    page.write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
        "# Unseeded\n\n"
        "```{code-cell} ipython3\nimport random\nprint(random.random())\n```\n\n"
        "```{code-cell} ipython3\nprint(list({'alpha', 'beta', 'gamma', 'delta'}))\n```\n",
        encoding="utf-8",
    )
    difference = run_twice(page)
    assert "outputs differ from the first run in" in difference
    assert "cell 0 (line 14 of " in difference and "'import random'" in difference
    assert "cell 1 (line 19 of " in difference
