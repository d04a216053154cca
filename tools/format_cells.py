"""Format the code cells of the MyST pages with ruff: one formatter, one
configuration (``ruff.toml``, 79 columns).

    python -m tools.format_cells             # format every page of _toc.yml
    python -m tools.format_cells book/part2-pytorch/autograd-basics.md
    python -m tools.format_cells --check     # write nothing; show the diffs

Every page's code cells, as MyST-NB reads them (``tools.pages.read_notebook``),
are written as one notebook per page into a temporary folder, and a single
``ruff format`` run formats them all. Ruff formats a notebook cell by cell,
as IPython runs it: line magics (``%xmode Minimal``) and shell escapes
(``!pip``) are parsed and kept, cell magics (``%%timeit``) are left alone,
and a trailing ``;`` that hides a cell's value stays. Only the lines of each
cell's body are rewritten in the ``.md``: the ``{code-cell}`` fence, the
cell's options (``:tags:`` lines or a ``---`` YAML block) and everything
else on the page stay as they are, byte for byte.

``tests/test_format.py`` fails on a page whose cells are not formatted, or
have a line over 79 characters (ruff does not split a long string or
comment: split those by hand).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from markdown_it.renderer import RendererHTML
from myst_nb.core.read import read_myst_markdown_notebook
from myst_parser.config.main import MdParserConfig
from myst_parser.parsers.mdit import create_md_parser

from tools.pages import ROOT, code_cells, notebook_pages, shown_path

CONFIG = ROOT / "ruff.toml"
MAX_LINE = 79  # ruff.toml's line-length, which the browser tests' code boxes fit
COMMAND = "python -m tools.format_cells"


class FormatError(RuntimeError):
    """A page that cannot be formatted: its cells do not parse as Python, or
    the .md cannot be matched with the notebook MyST-NB reads."""


@dataclasses.dataclass
class Cell:
    """One code cell of a page: its body's lines ``start:end`` (0-based, in
    the page's lines) and its index in the page's notebook."""

    index: int
    number: int  # counting code cells from 0, as the stored outputs do
    start: int
    end: int
    source: str  # the body, without trailing blank lines

    def where(self, page: Path) -> str:
        first = next((line for line in self.source.splitlines() if line.strip()), "")
        return (f"{shown_path(page)}:{self.start + 1}: code cell {self.number} "
                f"({first[:60]!r})")


def _strip_trailing_blank(lines: list[str]) -> list[str]:
    lines = list(lines)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _fences(text: str) -> list:
    """The top-level ``{code-cell}`` fences of a page, found as MyST-NB's
    reader finds them (``myst_nb.core.read.read_myst_markdown_notebook``:
    myst-parser's default configuration, block level only)."""
    config = dataclasses.replace(MdParserConfig(), disable_syntax=["inline"])
    parser = create_md_parser(config, RendererHTML)
    fences, nesting = [], 0
    for token in parser.parse(text + "\n"):
        nesting += token.nesting
        if nesting == 0 and token.type == "fence" and token.info.startswith("{code-cell}"):
            fences.append(token)
    return fences


def page_cells(page: Path, text: str | None = None) -> list[Cell]:
    """The code cells of ``page`` with the lines their bodies occupy."""
    text = page.read_text(encoding="utf-8") if text is None else text
    notebook = read_myst_markdown_notebook(text, add_source_map=True, path=page)
    indices = code_cells(notebook)
    fences = _fences(text)
    if len(fences) != len(indices):
        raise FormatError(f"{shown_path(page)}: {len(fences)} {{code-cell}} fences "
                          f"but MyST-NB reads {len(indices)} code cells")
    lines = text.splitlines()
    cells = []
    for number, (index, token) in enumerate(zip(indices, fences)):
        content = token.content.splitlines()
        first = token.map[0] + 1  # the line after the opening fence
        if lines[first:first + len(content)] != content:
            raise FormatError(f"{shown_path(page)}:{token.map[0] + 1}: a {{code-cell}} "
                              "whose content is not on the lines after its fence")
        body = _strip_trailing_blank(notebook.cells[index].source.splitlines())
        content = _strip_trailing_blank(content)
        start = len(content) - len(body)
        if start < 0 or content[start:] != body:
            raise FormatError(f"{shown_path(page)}:{token.map[0] + 1}: the body of this "
                              "{code-cell} is not the end of its content")
        cells.append(Cell(index, number, first + start, first + len(content),
                          "\n".join(body)))
    return cells


def _notebook(sources: list[str]) -> dict:
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"language_info": {"name": "python"}},
        "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "outputs": [],
                   "execution_count": None, "source": source}
                  for i, source in enumerate(sources)],
    }


def ruff_format(sources: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each group of cell sources formatted by one ``ruff format`` run.

    ``sources`` maps a name (a page) to its cells' code; the result maps it
    to the formatted code, cell for cell. Raises FormatError, with ruff's
    message naming the page and cell, if any cell does not parse."""
    with tempfile.TemporaryDirectory(prefix="format-cells-") as folder:
        files = {}
        for number, (name, cells) in enumerate(sources.items()):
            path = Path(folder) / f"page{number}.ipynb"
            path.write_text(json.dumps(_notebook(cells)), encoding="utf-8")
            files[name] = path
        if not files:
            return {}
        process = subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--no-cache", "--config", str(CONFIG),
             *map(str, files.values())],
            capture_output=True, text=True)
        if process.returncode != 0:
            message = process.stderr + process.stdout
            for name, path in files.items():
                message = message.replace(str(path), str(name))
            # ruff numbers a notebook's cells from 1 in its messages
            raise FormatError(f"ruff format failed:\n{message.strip()}\n"
                              "(\"cell N\" counts the page's code cells from 1)")
        formatted = {}
        for name, path in files.items():
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            formatted[name] = ["".join(c["source"]) if isinstance(c["source"], list)
                               else c["source"] for c in cells]
        return formatted


@dataclasses.dataclass
class PageResult:
    page: Path
    cells: list[Cell]
    formatted: list[str]  # each cell's formatted body
    text: str  # the page as it is

    def changed(self) -> list[tuple[Cell, str]]:
        return [(cell, new) for cell, new in zip(self.cells, self.formatted)
                if new.rstrip("\n") != cell.source]

    def long_lines(self, formatted: bool = False) -> list[tuple[Cell, int, str]]:
        """(cell, page line, text) of every line over MAX_LINE characters, in
        the page as it is (or, with ``formatted``, once formatted)."""
        found = []
        shift = 0
        for cell, new in zip(self.cells, self.formatted):
            source = new.rstrip("\n") if formatted else cell.source
            start = cell.start + shift
            found += [(cell, start + offset + 1, line)
                      for offset, line in enumerate(source.splitlines())
                      if len(line) > MAX_LINE]
            if formatted:
                shift += len(source.splitlines()) - (cell.end - cell.start)
        return found

    def diff(self, cell: Cell, new: str) -> str:
        name = str(shown_path(self.page))
        return "".join(difflib.unified_diff(
            [line + "\n" for line in cell.source.splitlines()],
            [line + "\n" for line in new.rstrip("\n").splitlines()],
            f"{name} code cell {cell.number} (line {cell.start + 1}), as it is",
            f"{name} code cell {cell.number}, as ruff formats it", n=2))

    def new_text(self) -> str:
        lines = self.text.splitlines()
        for cell, new in sorted(zip(self.cells, self.formatted),
                                key=lambda pair: -pair[0].start):
            lines[cell.start:cell.end] = new.rstrip("\n").splitlines()
        return "\n".join(lines) + ("\n" if self.text.endswith("\n") else "")


def format_pages(pages: list[Path]) -> list[PageResult]:
    """Every page's cells and how ruff formats them (one ruff run); nothing
    is written."""
    read = {}
    for page in pages:
        text = page.read_text(encoding="utf-8")
        cells = [cell for cell in page_cells(page, text) if cell.source.strip()]
        read[page] = (text, cells)
    formatted = ruff_format({shown_path(page): [cell.source for cell in cells]
                             for page, (text, cells) in read.items()})
    return [PageResult(page, cells, formatted[shown_path(page)], text)
            for page, (text, cells) in read.items()]


def report(result: PageResult) -> list[str]:
    """What is wrong with a page's code, one entry per cell or line."""
    problems = [f"{cell.where(result.page)} is not formatted as ruff formats it:\n"
                f"{result.diff(cell, new)}" for cell, new in result.changed()]
    problems += [f"{shown_path(result.page)}:{line}: code cell {cell.number}: "
                 f"{len(text)} characters (at most {MAX_LINE}; split the long string "
                 f"or comment by hand): {text.strip()[:70]!r}"
                 for cell, line, text in result.long_lines()]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages (default: every page)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; show each cell that would change, exit 1 if any")
    args = parser.parse_args(argv)
    pages = [p.resolve() for p in args.pages] or notebook_pages()
    try:
        results = format_pages(pages)
    except FormatError as error:
        print(error, file=sys.stderr)
        return 2
    if args.check:
        problems = [problem for result in results for problem in report(result)]
        print("\n".join(problems))
        if problems:
            print(f"{len(problems)} problems; `{COMMAND}` formats the cells "
                  "(long strings and comments are split by hand).")
        return 1 if problems else 0
    long = []
    for result in results:
        if result.changed():
            result.page.write_text(result.new_text(), encoding="utf-8")
            print(f"formatted {shown_path(result.page)} "
                  f"({len(result.changed())} cells)")
        long += [f"{shown_path(result.page)}:{line}: {len(text)} characters"
                 for cell, line, text in result.long_lines(formatted=True)]
    if long:
        print("Still over 79 characters (split by hand):\n" + "\n".join(long))
    return 1 if long else 0


if __name__ == "__main__":
    sys.exit(main())
