"""The book's pages, read with the parsers the build itself uses.

- The table of contents: sphinx-external-toc's ``parse_toc_yaml``, which
  Jupyter Book uses to read ``_toc.yml``.
- A page's front matter: myst-parser's ``read_topmatter``.
- A page as a notebook: MyST-NB's reader, the one MyST-NB and jupyter-cache
  execute. ``notebook.metadata.source_map`` holds the 0-based line on which
  each cell starts, so messages can name a page's line.

The build extension (``tools/book.py``), the learner notebooks and the
tests all read pages through this module.
"""

from __future__ import annotations

from pathlib import Path

from functools import lru_cache

import nbformat
import yaml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from myst_nb.core.read import read_myst_markdown_notebook
from myst_parser.config.main import (MdParserConfig, TopmatterReadError,
                                     read_topmatter)
from myst_parser.parsers.mdit import create_md_parser
from sphinx_external_toc.parsing import parse_toc_yaml

ROOT = Path(__file__).resolve().parent.parent


def toc_files(root: Path = ROOT) -> list[Path]:
    """Every file of ``_toc.yml`` (``.md``), in reading order."""
    site_map = parse_toc_yaml(root / "_toc.yml")
    ordered: list[str] = []

    def visit(docname: str) -> None:
        ordered.append(docname)
        for tree in site_map[docname].subtrees:
            for child in tree.files():
                visit(child)

    visit(site_map.root.docname)
    return [root / f"{docname}.md" for docname in ordered]


class FrontMatterError(ValueError):
    """Front matter that is not valid YAML; ``line`` is the page's line."""

    def __init__(self, path: Path, line: int, problem: str):
        super().__init__(f"{shown_path(path)}:{line}: the front matter is "
                         f"not valid YAML: {problem}")
        self.line, self.problem = line, problem


def parse_front_matter(text: str, path: Path) -> dict:
    try:
        return read_topmatter(text) or {}
    except TopmatterReadError as error:
        cause = error.__cause__
        mark = getattr(cause, "problem_mark", None)
        line = mark.line + 2 if mark else 1  # the YAML starts on line 2
        problem = getattr(cause, "problem", None) or str(error)
        raise FrontMatterError(path, line, problem) from error


def front_matter(path: Path) -> dict:
    """A page's YAML front matter (raises FrontMatterError)."""
    return parse_front_matter(path.read_text(encoding="utf-8"), path)


def is_notebook(path: Path) -> bool:
    """A page with code cells: its front matter names a kernel. A page
    whose front matter does not parse counts, so that it fails loudly."""
    try:
        return path.suffix == ".md" and "kernelspec" in front_matter(path)
    except FrontMatterError:
        return True


def notebook_pages(root: Path = ROOT) -> list[Path]:
    """The executable pages of the table of contents, in reading order."""
    return [path for path in toc_files(root) if is_notebook(path)]


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """A page as the notebook MyST-NB executes, with each cell's line."""
    return read_myst_markdown_notebook(
        path.read_text(encoding="utf-8"), add_source_map=True, path=path)


@lru_cache(maxsize=1)
def markdown_parser():
    """myst-parser's markdown-it parser with the book's MyST extensions."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    extensions = set(config["parse"]["myst_enable_extensions"])
    return create_md_parser(MdParserConfig(enable_extensions=extensions),
                            RendererHTML)


def tokens(text: str) -> list[Token]:
    """The block tokens of MyST Markdown; ``token.map`` holds 0-based lines.
    Directives are fences whose ``info`` is ``{name} argument``; their
    content is not parsed (call ``tokens`` on it)."""
    return markdown_parser().parse(text)


def code_cells(notebook: nbformat.NotebookNode) -> list[int]:
    """Indices of the code cells of a notebook."""
    return [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]


def shown_path(path: Path) -> Path:
    """A path as messages show it: relative to the repository if inside."""
    path = Path(path).resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def where(path: Path, notebook: nbformat.NotebookNode, index: int) -> str:
    """``code cell N (line L of PATH): 'first line'`` for notebook cell
    ``index``, N counting code cells from 0 as the stored outputs do."""
    lines = notebook.metadata.get("source_map") or []
    line = f"line {lines[index]} of " if index < len(lines) else ""
    number = code_cells(notebook).index(index)
    source = [s for s in notebook.cells[index].source.splitlines() if s.strip()]
    first = source[0][:60] if source else ""
    return f"code cell {number} ({line}{shown_path(path)}): {first!r}"
