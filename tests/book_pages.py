"""What the tests know about the book: where its pages are and how to run one.

A page is a MyST Markdown file under ``book/`` whose front matter has a
``kernelspec``; jupytext turns it into a notebook and pytest-notebook runs
that notebook in a fresh kernel.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml
from pytest_notebook.execution import execute_notebook

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # tools/: the build's page execution, shared with the tests
from tools.page_execution import executed_page  # noqa: E402

BOOK = ROOT / "book"
BUILD = ROOT / "_build"
EXEC_TIMEOUT = 600  # seconds per cell


def _kernel_env() -> dict:
    """The kernel environment the book build uses (_ext/kernel_environment.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kernel_environment", ROOT / "_ext" / "kernel_environment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.KERNEL_ENV)


KERNEL_ENV = _kernel_env()


class FrontMatterError(ValueError):
    """A page's front matter is not valid YAML (the message names file and line)."""


def read_front_matter(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    if end == -1:
        return {}
    try:
        return yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 2 if mark else 1  # the YAML starts on line 2 of the page
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise FrontMatterError(
            f"{shown_path(path)}:{line}: the front matter is not valid YAML: {problem}") from error


def is_notebook_page(path: Path) -> bool:
    try:
        return "kernelspec" in read_front_matter(path)
    except FrontMatterError:
        return True  # collected, so that its test fails with the YAML error


def notebook_pages(book: Path = BOOK) -> list[Path]:
    """Every executable page of the book, in a stable order.

    A page whose front matter does not parse is included: its test then
    fails naming the file and the line, instead of the page dropping out of
    the tests (or test collection crashing).
    """
    return sorted(
        p for p in book.rglob("*.md")
        if "_build" not in p.parts and is_notebook_page(p)
    )


def page_id(path: Path) -> str:
    return path.name


def load_page(path: Path) -> nbformat.NotebookNode:
    read_front_matter(path)  # a FrontMatterError names the file and line; jupytext would not
    return jupytext.read(path)


def execute_page(path: Path, env: dict | None = None):
    """Run a page top to bottom in a fresh kernel, in the page's own folder,
    with the build's kernel environment (``KERNEL_ENV``, updated by ``env``).

    Without ``env``, this is the build's own execution, shared with it
    (tools/page_execution.py): taken from the execution cache when the build
    or another test has executed the same code, else executed now and cached
    for the build. With ``env`` (not the build's environment), always
    executed now by pytest-notebook, and not cached.

    Returns an object with ``exec_error`` and ``notebook`` (the page's cells as
    jupytext reads them, with their outputs), like pytest-notebook's ``ExecuteResult``.
    """
    if env is None:
        load_page(path)  # a FrontMatterError names the file and line
        return executed_page(path, KERNEL_ENV)
    return execute_notebook(
        load_page(path), cwd=str(path.parent), timeout=EXEC_TIMEOUT,
        exec_env={**KERNEL_ENV, **(env or {})},
    )


def expected_error_problems(notebook: nbformat.NotebookNode, name: str,
                            page: Path | None = None) -> list[str]:
    """Check every ``raises-exception`` cell raised the error its page names.

    nbclient lets a tagged cell pass whether or not it raises, so a cell
    whose error vanished, or changed type, would go unnoticed without this.
    With ``page``, each problem names the cell's line in the page.
    """
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or "raises-exception" not in cell.metadata.get("tags", []):
            continue
        where = f"{name}, " + (cell_location(page, notebook, index) if page
                               else f"cell {index} ({first_line(cell.source)!r})")
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


def cell_location(page: Path, notebook: nbformat.NotebookNode, index: int) -> str:
    """Where notebook cell ``index`` of ``page`` is: ``cell N (line L of PATH): 'first line'``,
    N counting code cells only, as the stored outputs do."""
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    number = code.index(index)
    lines = page_cell_lines(page)
    line = f"line {lines[number]} of " if number < len(lines) else ""
    return f"cell {number} ({line}{shown_path(page)}): {first_line(notebook.cells[index].source)!r}"


def failed_cell(page: Path, notebook: nbformat.NotebookNode) -> str:
    """Where the cell that stopped an execution is (the first error outside a
    ``raises-exception`` cell), or 'a cell' when no output shows it."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and "raises-exception" not in cell.metadata.get("tags", []) \
                and any(o.output_type == "error" for o in cell.get("outputs", [])):
            return cell_location(page, notebook, index)
    return "a cell"


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


# --- Stored outputs -----------------------------------------------------------
#
# The text a page prints is kept in tests/references/<page>.ipynb (code cells
# only, outputs normalised) and every run is compared with it.

REFERENCES = ROOT / "tests" / "references"

# (pattern, replacement): what may differ between two correct runs.
NORMALISE = [
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "0x<ADDRESS>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(ns|µs|us|ms)\b"), "<TIME>"),
    (re.compile(r"\b\d+\.\d+\s?s\b"), "<TIME>"),
    (re.compile(re.escape(str(ROOT))), "<ROOT>"),
    (re.compile(r"(/[\w.+@-]+)+/(site|dist)-packages(/[\w.+@-]+)*"), "<LIBRARY>"),
    (re.compile(r"/tmp(/[\w.+@-]+)+"), "<TMP>"),
]
KEPT_MIME = ("text/plain", "application/papermill.record/text/plain")


def normalise_text(text: str) -> str:
    text = strip_ansi(text)
    for pattern, replacement in NORMALISE:
        text = pattern.sub(replacement, text)
    return text


def image_size(mime: str, data) -> str:
    """Images are compared by kind and pixel size, never by bytes."""
    if mime == "image/png":
        import base64
        import struct

        raw = base64.b64decode(data)
        width, height = struct.unpack(">II", raw[16:24])
        return f"<PNG {width}x{height}>"
    match = re.search(r'width="([\d.]+)pt" height="([\d.]+)pt"', data if isinstance(data, str) else "")
    return f"<SVG {match.group(1)}x{match.group(2)}pt>" if match else "<SVG>"


def normalise_output(output, measured: bool = False) -> dict | None:
    """An output as compared; ``measured`` outputs (cells tagged ``timing``)
    keep their kind and glue name but not the value, which depends on the
    machine's speed."""
    kind = output.output_type
    if kind == "stream":
        return {"output_type": "stream", "name": output.name, "text": normalise_text(output.text)}
    if kind == "error":
        return {"output_type": "error", "ename": output.ename,
                "evalue": normalise_text(output.evalue), "traceback": []}
    data = {}
    for mime, value in sorted(output.get("data", {}).items()):
        base = mime.removeprefix("application/papermill.record/")
        if base in ("image/png", "image/svg+xml"):
            data[mime] = image_size(base, value)
        elif mime in KEPT_MIME:
            text = normalise_text(value if isinstance(value, str) else "".join(value))
            data[mime] = "<MEASURED>" if measured and mime != "text/plain" else text
    if not data:
        return None
    name = output.get("metadata", {}).get("scrapbook", {}).get("name")
    result = {"output_type": kind, "data": data, "metadata": {"glue": name} if name else {}}
    if kind == "execute_result":
        result["execution_count"] = None
    return result


def normalised_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The code cells of an executed page: source, and outputs as compared."""
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        measured = "timing" in cell.metadata.get("tags", [])
        outputs = []
        normalised = (normalise_output(o, measured) for o in cell.get("outputs", []))
        for output in filter(None, normalised):
            previous = outputs[-1] if outputs else None
            if previous and output["output_type"] == previous["output_type"] == "stream" \
                    and output["name"] == previous["name"]:
                previous["text"] += output["text"]  # how a stream is split is timing
            else:
                outputs.append(output)
        cells.append({"cell_type": "code", "execution_count": None, "metadata": {},
                      "source": cell.source, "outputs": outputs})
    # nbformat 4.4 has no cell ids: nothing random in the stored file
    return nbformat.from_dict({"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": cells})


def reference_path(page: Path) -> Path:
    return REFERENCES / f"{page.stem}.ipynb"


def write_reference(page: Path, obtained: nbformat.NotebookNode) -> None:
    REFERENCES.mkdir(exist_ok=True)
    nbformat.write(obtained, reference_path(page), version=nbformat.NO_CONVERT)


def compare_with_reference(page: Path, obtained: nbformat.NotebookNode) -> str:
    """Return a readable diff between stored and obtained outputs ('' if equal)."""
    path = reference_path(page)
    if not path.exists():
        return f"{page.name}: no stored outputs at {path.relative_to(ROOT)}"
    expected = nbformat.read(path, as_version=4)
    return notebook_difference(page, expected, obtained, "the stored ones")


def notebook_difference(page: Path, expected: nbformat.NotebookNode,
                        obtained: nbformat.NotebookNode, other: str) -> str:
    """A readable diff of two normalised runs of ``page`` ('' if equal), naming
    the cells that differ and their lines; ``other`` names ``expected``."""
    from pytest_notebook.diffing import diff_notebooks, diff_to_string, filter_diff

    if len(expected.cells) != len(obtained.cells):
        return (f"{page.name}: the page has {len(obtained.cells)} code cells, "
                f"{other} {len(expected.cells)}")
    ignored = ["/metadata", "/cells/*/id", "/cells/*/source", "/cells/*/metadata",
               "/cells/*/execution_count"]
    diff = filter_diff(diff_notebooks(expected, obtained), ignored)
    if not diff:
        return ""
    changed = sorted(
        entry["key"] for top in diff if top["key"] == "cells" for entry in top.get("diff", [])
    )
    lines = page_cell_lines(page)
    where = "\n".join(
        f"  cell {i} (line {lines[i]} of {shown_path(page)}): {first_line(obtained.cells[i].source)!r}"
        for i in changed if isinstance(i, int)
    )
    text = diff_to_string(expected, diff, use_git=False, use_color=False)
    return f"{page.name}: outputs differ from {other} in\n{where}\n{text}"


def shown_path(path: Path) -> Path:
    """A path as messages show it: relative to the repository when inside it."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def page_cell_lines(page: Path) -> list[int]:
    """The line of the page on which each code cell starts (1-based)."""
    return [
        number for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if line.startswith("```{code-cell}")
    ]


def build_book(source: Path = ROOT, *extra: str) -> tuple[int, str]:
    """Build SOURCE as README command (1) does (``tools/build.py``: ``jupyter-book
    build`` with the pages executed in parallel first), with ``-W -n --keep-going``;
    return (exit code, log)."""
    process = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build.py"), str(source), "-W", "-n", "--keep-going",
         *extra],
        cwd=source, capture_output=True, text=True,
    )
    return process.returncode, strip_ansi(process.stdout + process.stderr)


# Entries of the repository that a small test book does not share with it.
NOT_LINKED = {"book", "tests", "_toc.yml", "_build", ".git", ".jupyter_cache", ".pytest_cache",
              ".hypothesis", ".benchmarks", ".ci", "__pycache__"}


def link_configuration(folder: Path) -> None:
    """Give a small test book in ``folder`` the repository's configuration
    (_config.yml, _ext/, _static/, vendor/, ...) and its bibliography."""
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (folder / entry.name).symlink_to(entry)
    (folder / "book").mkdir(exist_ok=True)
    (folder / "book" / "references.bib").symlink_to(ROOT / "book" / "references.bib")


# The front matter of a page of a small test book; ``extra`` adds keys.
PAGE_FRONT_MATTER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
{extra}---
"""
