"""Every page of the book, executed top to bottom in a fresh kernel."""

import pytest
from nbclient.exceptions import CellExecutionError

from book_pages import (
    execute_page, expected_error_problems, notebook_pages, page_id, strip_ansi,
)

PAGES = notebook_pages()


def test_the_book_has_pages():
    assert len(PAGES) >= 6, [p.name for p in PAGES]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_page(page):
    result = execute_page(page)
    if result.exec_error is not None:
        error = result.exec_error
        if isinstance(error, CellExecutionError):
            message = strip_ansi(str(error))
            pytest.fail(f"{page.name}: a cell failed unexpectedly\n{message}", pytrace=False)
        raise error
    problems = expected_error_problems(result.notebook, page.name)
    assert not problems, "\n".join(problems)
