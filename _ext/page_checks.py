"""Checks the build makes on every page; each fails it under ``-W``, naming the line.

- Front matter that is not valid YAML. MyST only says "Malformed YAML" at
  line 1 of the page; this names the line and the YAML error.
- A cell whose error is not the one the page promises. MyST-NB executes
  cells tagged ``raises-exception`` whether or not they raise, so an error
  that vanished, or changed type, would be built silently. For every
  executed code cell the extension compares what the cell shows with its
  tags: a ``raises-exception`` cell must name the exception in
  ``:expect_error:``, must show that exception, and must not remove its
  output (the reader is meant to see the error, and the build cannot check
  what it does not show). A cell that shows an error without the tag is
  reported with its line, which MyST-NB's "Executing notebook failed" does
  not give.

The page tests check the same on the executed notebook
(``tests/book_pages.expected_error_problems``).
"""

from __future__ import annotations

import re

import yaml
from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)
TAG = "raises-exception"


def shown_errors(cell: nodes.Element) -> list[str]:
    """The tracebacks a code cell shows, as text."""
    return [block.astext() for block in cell.findall(nodes.literal_block)
            if "traceback" in block.get("classes", [])]


def raised(traceback: str, name: str) -> bool:
    """Whether a traceback ends in exception ``name`` (``Name: message`` or a bare
    ``Name``, possibly qualified as ``module.Name``)."""
    return re.search(rf"^(?:[\w.]+\.)?{re.escape(name)}(?::|\s*$)", traceback, re.MULTILINE) is not None


def summary(traceback: str) -> str:
    """The ``Name: message`` line of a traceback (the last line that looks like one)."""
    lines = [line for line in traceback.splitlines() if re.match(r"^[\w.]+(:|$)", line.strip())]
    return (lines[-1] if lines else traceback.strip().splitlines()[-1]).strip()[:120]


CODE_CELL = re.compile(r"^\s*(`{3,}|~{3,}|:{3,})\s*\{code-cell\}")


def code_cell_lines(path) -> list[int]:
    """The 1-based line of each code cell's opening fence in a MyST page."""
    try:
        with open(path, encoding="utf-8") as source:
            return [number for number, line in enumerate(source, 1) if CODE_CELL.match(line)]
    except OSError:
        return []


def locate(app, cell: nodes.Element, fences: list[int]):
    """(location, name) of a code cell: the line of its opening fence, and its
    number among the page's code cells, counted from 0 as the page tests count.

    MyST-NB places a code cell a line or two below its fence; the cell is the
    last one whose fence is at or above that line.
    """
    line = cell.line or 0
    above = [fence for fence in fences if fence <= line]
    if not above:
        return cell, f"code cell (notebook cell {cell.get('cell_index', '?')})"
    return (app.env.docname, above[-1]), f"code cell {len(above) - 1}"


def check_cells(app, doctree: nodes.document) -> None:
    from myst_nb.sphinx_ import NbMetadataCollector

    execution = NbMetadataCollector.get_exec_data(app.env, app.env.docname) or {}
    succeeded = execution.get("succeeded", True)
    fences = None
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") != "cell_code":
            continue
        if fences is None:
            fences = code_cell_lines(app.env.doc2path(app.env.docname))
        metadata = cell.get("cell_metadata") or {}
        tags = metadata.get("tags") or []
        errors = shown_errors(cell)
        location, where = locate(app, cell, fences)

        def warn(message: str, subtype: str) -> None:
            logger.warning(message, location=location, type="page_checks", subtype=subtype)

        if TAG not in tags:
            for traceback in errors:
                warn(f"{where} raised {summary(traceback)} but is not tagged {TAG}", "untagged")
            continue
        expected = metadata.get("expect_error")
        if not expected:
            warn(f"{where} is tagged {TAG} but names no `:expect_error:` exception type", "unnamed")
        elif {"remove-output", "remove_output"} & set(tags):
            warn(f"{where} is tagged {TAG} and remove-output: show the error, "
                 "or the build cannot check it", "hidden")
        elif not succeeded:
            continue  # the page stopped early; MyST-NB reports the failure
        elif not errors:
            warn(f"{where} is tagged {TAG} and expects {expected}, but it raised nothing", "missing")
        elif not raised(errors[0], expected):
            warn(f"{where} expects {expected} but raised {summary(errors[0])}", "other")


def check_front_matter(app, docname: str, source: list[str]) -> None:
    text = source[0]
    if not text.startswith("---\n"):
        return
    end = text.find("\n---", 4)
    if end == -1:
        logger.warning("the front matter opened by '---' on line 1 is never closed",
                       location=(docname, 1), type="page_checks", subtype="front_matter")
        return
    try:
        yaml.safe_load(text[4:end])
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 2 if mark else 1  # the YAML starts on line 2
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        logger.warning(f"the front matter is not valid YAML: {problem} (line {line})",
                       location=(docname, line), type="page_checks", subtype="front_matter")


def setup(app):
    app.connect("source-read", check_front_matter)
    app.connect("doctree-read", check_cells)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
