"""Every page of the book, executed top to bottom in a fresh kernel.

A page fails on an unexpected error (a failed assertion or exercise
self-check included), on a ``raises-exception`` cell that no longer raises
the error it names, and on any change of its printed outputs.
"""

import pytest
from nbclient.exceptions import CellExecutionError

from book_pages import (
    FrontMatterError, compare_with_reference, execute_page, expected_error_problems,
    failed_cell, normalised_notebook, notebook_pages, page_id, strip_ansi, write_reference,
)

PAGES = notebook_pages()
UPDATE_HINT = "If the change is intended, store the new outputs with:\n" \
    "  python -m pytest tests/test_pages.py --update-references"


def test_the_book_has_pages():
    assert len(PAGES) >= 10, [p.name for p in PAGES]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_page(page, update_references):
    try:
        result = execute_page(page)
    except FrontMatterError as error:
        pytest.fail(str(error), pytrace=False)
    if result.exec_error is not None:
        error = result.exec_error
        if isinstance(error, CellExecutionError):
            message = strip_ansi(str(error))
            where = failed_cell(page, result.notebook)
            pytest.fail(f"{page.name}: {where} failed unexpectedly\n{message}", pytrace=False)
        raise error
    problems = expected_error_problems(result.notebook, page.name, page)
    assert not problems, "\n".join(problems)

    obtained = normalised_notebook(result.notebook)
    if update_references:
        write_reference(page, obtained)
        return
    difference = compare_with_reference(page, obtained)
    if difference:
        pytest.fail(f"{difference}\n{UPDATE_HINT}", pytrace=False)
