"""A page run again, in a new kernel with another hash seed, prints the same.

The stored outputs (tests/references/) catch regressions only if a page
prints the same on every run. The page checked is
differentiating-randomness.md, which draws the most random numbers (Monte
Carlo estimators over 10^5 samples, ``rsample`` and ``sample``,
score-function estimates and their variances, glued at full precision). A
missing seed, a generator seeded in the wrong cell, an iteration over a
set or a time stamp shows up as a difference naming the cell. The first run
is the build's (from the execution cache); the second is a new kernel with
``PYTHONHASHSEED=1`` instead of the build's fixed seed, so that the fixed
seed cannot hide a page that depends on the order of a set.
"""

from __future__ import annotations

import os
from pathlib import Path

from nbclient import NotebookClient

from book_pages import PAGE_FRONT_MATTER, ensure_executed, last_line
import stored_outputs as outputs
from tools import execution, pages

PAGE = pages.ROOT / "book" / "part2-pytorch" / "differentiating-randomness.md"


def run_again(page: Path):
    notebook = pages.read_notebook(page)
    env = {**os.environ, **execution.KERNEL_ENV,
           "PYTHONHASHSEED": "1"}
    NotebookClient(notebook, timeout=execution.TIMEOUT, kernel_name="python3",
                   resources={"metadata": {"path": str(page.parent)}}
                   ).execute(env=env)
    return notebook


def differences(page: Path, cache: Path) -> list[str]:
    first, failure = execution.executed(page, cache)
    assert not failure, last_line(failure)
    second = run_again(page)
    code = pages.code_cells(second)
    return [f"{pages.where(page, second, code[number])}\n{diff}"
            for number, diff in outputs.difference(outputs.normalised(first),
                                                   outputs.normalised(second))]


def test_a_page_gives_the_same_outputs_on_every_run(cache):
    found = differences(PAGE, cache)
    assert not found, "two runs of the same page differ:\n" + "\n".join(found)


def test_the_comparison_sees_an_unseeded_page(tmp_path):
    """The check itself: unseeded randomness and set order are caught."""
    page = tmp_path / "unseeded.md"
    page.write_text(
        PAGE_FRONT_MATTER + "\n# Unseeded\n\n"
        "```{code-cell} ipython3\nimport random\nprint(random.random())\n```\n"
        "\n```{code-cell} ipython3\n"
        "print(list({'alpha', 'beta', 'gamma', 'delta'}))\n```\n",
        encoding="utf-8")
    cache = ensure_executed([page], tmp_path / "_build")
    found = differences(page, cache)
    assert len(found) == 2, found
    assert found[0].startswith("code cell 0 (line 14 of ")
    assert found[1].startswith("code cell 1 (line 19 of ")
