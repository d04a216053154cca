"""The pages' code is formatted by one formatter with one configuration:
``ruff format`` with ``ruff.toml`` (79 columns), run by
``python -m tools.format_cells``.

A page fails when a code cell is not as ruff formats it (the message names
the page, its line and cell, and shows the diff) or has a line over 79
characters (a long string or comment, which ruff leaves alone): at 1280 px
a code box shows 79 characters without a horizontal scroll bar.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools import format_cells
from tools.pages import ROOT, notebook_pages

PAGES = notebook_pages()


@pytest.fixture(scope="module")
def formatted() -> dict[Path, format_cells.PageResult]:
    """Every page through one ruff run."""
    return {result.page: result for result in format_cells.format_pages(PAGES)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_cells_are_formatted(page, formatted):
    problems = format_cells.report(formatted[page])
    assert not problems, (
        "\n".join(problems)
        + f"\n`{format_cells.COMMAND} {page.relative_to(ROOT)}` formats the cells")


def test_ruff_is_the_pinned_one():
    """Another ruff may format differently: the pin in requirements.in is the
    one installed."""
    pin = next(line.split("==")[1].strip() for line in
               (ROOT / "requirements.in").read_text().splitlines()
               if line.startswith("ruff=="))
    version = subprocess.run([sys.executable, "-m", "ruff", "--version"],
                             capture_output=True, text=True, check=True).stdout.split()[1]
    assert version == pin, f"ruff {version} is installed, requirements.in pins {pin}"


# --- The tool itself, on a page written here --------------------------------------

PAGE = textwrap.dedent('''\
    ---
    kernelspec:
      display_name: Python 3
      language: python
      name: python3
    ---

    # A page

    ```{code-cell} ipython3
    :tags: [remove-cell]

    try:
        from myst_nb import glue
    except ModuleNotFoundError:
        def glue(name, value, display=True):
            pass

    %xmode Minimal
    ```

    Prose with a fence that is not a cell:

    ```python
    x=[1,2 ,3]
    ```

    ```{code-cell} ipython3
    ---
    tags: [hide-input]
    mystnb:
      figure:
        caption: A   caption
    ---
    import torch
    torch.manual_seed(0);
    ```

    ```{code-cell} ipython3
    y = {'a':1}
    ```

    ```{code-cell} ipython3
    z = "a string much too long to fit on one line of seventy-nine characters, no: 82"
    ```
    ''')


def line_of(start: str) -> int:
    """The line of PAGE that starts with ``start`` (1-based)."""
    return next(number for number, line in enumerate(PAGE.splitlines(), 1)
                if line.startswith(start))


@pytest.fixture
def page(tmp_path) -> Path:
    path = tmp_path / "a-page.md"
    path.write_text(PAGE, encoding="utf-8")
    return path


def test_a_page_not_formatted_fails_with_the_cell_and_diff(page):
    [result] = format_cells.format_pages([page])
    problems = format_cells.report(result)
    text = "\n".join(problems)
    assert len(problems) == 4, text
    assert f"a-page.md:{line_of('try:')}: code cell 0 ('try:')" in problems[0]
    assert "+\n     def glue" in problems[0]  # ruff's blank line before `def glue`
    assert f"a-page.md:{line_of('import torch')}: code cell 1 ('import torch')" in problems[1]
    assert "+y = {\"a\": 1}" in problems[2] and "-y = {'a':1}" in problems[2]
    assert f"a-page.md:{line_of('z = ')}: code cell 3: 82 characters" in problems[3]


def test_formatting_rewrites_only_the_cells_bodies(page):
    assert format_cells.main([str(page)]) == 1  # the long string is left to a person
    text = page.read_text(encoding="utf-8")
    assert text == PAGE.replace(
        "except ModuleNotFoundError:\n", "except ModuleNotFoundError:\n\n").replace(
        "    pass\n\n%xmode", "    pass\n\n\n%xmode").replace(
        "import torch\ntorch", "import torch\n\ntorch").replace(
        "{'a':1}", '{"a": 1}')
    # options, YAML, the plain fence, magics and the `;` are as they were
    for kept in (":tags: [remove-cell]", "caption: A   caption", "x=[1,2 ,3]",
                 "%xmode Minimal", "torch.manual_seed(0);"):
        assert kept in text
    [result] = format_cells.format_pages([page])
    [problem] = format_cells.report(result)
    assert "code cell 3: 82 characters" in problem


def test_a_cell_that_is_not_python_names_its_page(tmp_path):
    path = tmp_path / "broken.md"
    path.write_text(PAGE.replace("y = {'a':1}", "y = {'a':"), encoding="utf-8")
    with pytest.raises(format_cells.FormatError, match="broken.md"):
        format_cells.format_pages([path])


def test_check_writes_nothing_and_fails(page, capsys):
    assert format_cells.main(["--check", str(page)]) == 1
    assert page.read_text(encoding="utf-8") == PAGE
    assert "is not formatted as ruff formats it" in capsys.readouterr().out


def test_a_formatted_page_passes(page):
    page.write_text(PAGE.replace('z = "a string much too long',
                                 'z = "a string too long').replace(
                                     "{'a':1}", '{"a": 1}').replace(
                                     "import torch\ntorch", "import torch\n\ntorch").replace(
                                     "except ModuleNotFoundError:\n",
                                     "except ModuleNotFoundError:\n\n").replace(
                                     "    pass\n\n%xmode", "    pass\n\n\n%xmode"),
                    encoding="utf-8")
    [result] = format_cells.format_pages([page])
    assert format_cells.report(result) == []
    assert format_cells.main(["--check", str(page)]) == 0


def test_the_configuration_is_79_columns():
    assert "line-length = 79" in (ROOT / "ruff.toml").read_text()
    assert format_cells.MAX_LINE == 79
