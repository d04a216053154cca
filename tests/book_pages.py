"""What the tests know about the book: where its pages are and how to run one.

A page is a MyST Markdown file under ``book/`` whose front matter has a
``kernelspec``; jupytext turns it into a notebook and pytest-notebook runs
that notebook in a fresh kernel.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import yaml
from pytest_notebook.execution import execute_notebook

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
EXEC_TIMEOUT = 600  # seconds per cell


def read_front_matter(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    if end == -1:
        return {}
    return yaml.safe_load(text[4:end]) or {}


def notebook_pages() -> list[Path]:
    """Every executable page of the book, in a stable order."""
    return sorted(
        p for p in BOOK.rglob("*.md")
        if "_build" not in p.parts and "kernelspec" in read_front_matter(p)
    )


def page_id(path: Path) -> str:
    return path.name


def load_page(path: Path) -> nbformat.NotebookNode:
    return jupytext.read(path)


def execute_page(path: Path):
    """Run a page top to bottom in a fresh kernel, in the page's own folder.

    Returns pytest-notebook's ``ExecuteResult`` (``exec_error``, ``notebook``).
    """
    return execute_notebook(
        load_page(path), cwd=str(path.parent), timeout=EXEC_TIMEOUT
    )


def expected_error_problems(notebook: nbformat.NotebookNode, name: str) -> list[str]:
    """Check every ``raises-exception`` cell raised the error its page names.

    nbclient lets a tagged cell pass whether or not it raises, so a cell
    whose error vanished, or changed type, would go unnoticed without this.
    """
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or "raises-exception" not in cell.metadata.get("tags", []):
            continue
        where = f"{name}, cell {index} ({first_line(cell.source)!r})"
        expected = cell.metadata.get("expect_error")
        if not expected:
            problems.append(f"{where}: tagged raises-exception but names no `:expect_error:` type")
            continue
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if not errors:
            problems.append(f"{where}: expected {expected} but the cell raised nothing")
        elif errors[0].ename != expected:
            problems.append(
                f"{where}: expected {expected} but it raised {errors[0].ename}: {errors[0].evalue}"
            )
    return problems


def first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip()]
    return lines[0][:60] if lines else ""


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def load_tagged_cells(path: Path, tag: str) -> dict:
    """Run the code cells of a page that carry ``tag`` and return their namespace.

    This is how the tests reach the engines written in Part I: the page is
    the only copy of the code.
    """
    cells = [c for c in load_page(path).cells if tag in c.metadata.get("tags", [])]
    if not cells:
        raise LookupError(f"{path.name} has no code cell tagged {tag!r}")
    namespace: dict = {"__name__": f"{path.stem}:{tag}"}
    exec(compile("\n\n".join(c.source for c in cells), f"{path.name}[{tag}]", "exec"), namespace)
    return namespace
