"""Every page of the book, executed top to bottom in a fresh kernel.

A page fails on an unexpected error (a failed assertion or exercise
self-check included), on a ``raises-exception`` cell that no longer raises
the error it names, and on a change of its printed outputs beyond float
noise (``tools/outputs.py``, ``tests/stored_outputs.py``).
"""

import copy
import re

import nbformat
import pytest

from book_pages import page_problems, reference_path, write_reference
import stored_outputs as outputs
from tools.pages import code_cells, notebook_pages, read_notebook

PAGES = notebook_pages()
UPDATE_HINT = ("If the change is intended, store the new outputs with\n"
               "  python -m pytest tests/test_pages.py --update-references\n"
               "and review them with git diff tests/references")


def test_the_book_has_pages():
    assert len(PAGES) >= 10, [p.name for p in PAGES]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page(page, cache, update_references):
    if update_references:
        write_reference(page, cache)
    problems = page_problems(page, cache)
    if problems:
        pytest.fail("\n".join(problems) + "\n" + UPDATE_HINT, pytrace=False)


def changed(notebook, pattern: str, new: str):
    """A copy of a stored notebook with the first match of ``pattern`` in a
    glued value replaced by ``new``."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        for output in cell.outputs:
            for mime, text in output.get("data", {}).items():
                if re.search(pattern, text):
                    output["data"][mime] = re.sub(pattern, new, text, count=1)
                    return notebook
    raise LookupError(pattern)


def test_the_comparison_fails_a_change_in_the_4th_digit():
    """z = 2.5794253 (autograd-basics, float32) glued as 2.5798253: a
    failure; float noise in the 7th digit and beyond: no failure."""
    page = next(p for p in PAGES if p.name == "autograd-basics.md")
    stored = nbformat.read(reference_path(page), as_version=4)
    assert outputs.difference(stored, stored) == []
    noisy = changed(stored, r"2\.5794253\d*", "2.5794257")
    assert outputs.difference(stored, noisy) == []
    wrong = changed(stored, r"2\.5794253\d*", "2.5798253")
    assert len(outputs.difference(stored, wrong)) == 1


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_timings_are_glued_from_timing_cells(page):
    """A value measured in a cell tagged ``timing`` and glued in the next
    (hidden) cell: that cell is tagged ``timing`` too, so the stored
    outputs keep that the value is there, not the value."""
    notebook = read_notebook(page)
    code = [notebook.cells[i] for i in code_cells(notebook)]
    untagged = [
        after.source.splitlines()[0] for before, after in zip(code, code[1:])
        if "timing" in before.metadata.get("tags", [])
        and "glue(" in after.source
        and "timing" not in after.metadata.get("tags", [])]
    assert not untagged, f"{page.name}: tag these cells timing: {untagged}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_glue_calls_are_not_shown(page):
    """``glue`` is the build's bookkeeping: it is called and imported only
    in cells the reader does not see (tagged remove-cell or remove-input)."""
    notebook = read_notebook(page)
    shown = [index for index in code_cells(notebook)
             if "glue" in notebook.cells[index].source
             and not {"remove-cell", "remove-input"}
             & set(notebook.cells[index].metadata.get("tags", []))]
    assert not shown, (
        f"{page.name}: cells {shown} show glue; move it to a cell tagged "
        "remove-cell after the code that computes the value")
