"""What the tests share: building a book, the pages' executions and checks.

Pages are read with ``tools.pages`` and executed with ``tools.execution``,
exactly as the build executes them; the executions come from the cache the
build filled (a page missing from it is executed first, in parallel, and
cached for the build).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
from filelock import FileLock

import stored_outputs as outputs
from tools import execution, pages
from tools.pages import ROOT

BUILD = ROOT / "_build"
REFERENCES = ROOT / "tests" / "references"
# README command (1), without its install step; the jupyter-book of the
# Python that runs the tests (a virtual environment's, say).
BUILD_COMMAND = [str(Path(sys.executable).with_name("jupyter-book")), "build",
                 "-W", "-n", "--keep-going"]
TAG = "raises-exception"


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def build(source: Path = ROOT, *extra: str) -> tuple[int, str]:
    """Build ``source`` with README command (1); return (exit code, log)."""
    process = subprocess.run([*BUILD_COMMAND, *extra, str(source)], cwd=source,
                             capture_output=True, text=True)
    return process.returncode, strip_ansi(process.stdout + process.stderr)


def warnings(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if re.search(r"\b(WARNING|ERROR|CRITICAL)\b:", line)]


def ensure_executed(paths: list[Path], build_dir: Path = BUILD) -> Path:
    """Execute those of ``paths`` that are not cached yet; return the cache.
    pytest-xdist workers take turns, so each page runs once."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(build_dir / ".execution.lock")):
        cache = execution.cache_path(build_dir)
        execution.execute(paths, cache)
    return cache


def failed_cell(page: Path, notebook, traceback: str) -> str:
    """Where the cell named in nbclient's CellExecutionError is."""
    match = re.search(r"executing the following cell:\n-+\n(.*?)\n-+\n",
                      traceback, re.DOTALL)
    for index in pages.code_cells(notebook):
        if match and notebook.cells[index].source.strip() == \
                match.group(1).strip():
            return pages.where(page, notebook, index)
    return "a cell"


def last_line(traceback: str) -> str:
    lines = [line for line in strip_ansi(traceback).splitlines()
             if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", line)]
    return lines[-1] if lines else strip_ansi(traceback).strip()[-500:]


def expected_error_problems(page: Path, notebook) -> list[str]:
    """Every ``raises-exception`` cell raised the error its page names."""
    problems = []
    for index in pages.code_cells(notebook):
        cell = notebook.cells[index]
        if TAG not in cell.metadata.get("tags", []):
            continue
        where = pages.where(page, notebook, index)
        expected = cell.metadata.get("expect_error")
        errors = [o for o in cell.get("outputs", [])
                  if o.output_type == "error"]
        if not expected:
            problems.append(f"{where}: tagged {TAG} but names no "
                            "`:expect_error:` type")
        elif not errors:
            problems.append(f"{where}: expected {expected} but the cell "
                            "raised nothing")
        elif errors[0].ename != expected:
            problems.append(f"{where}: expected {expected} but it raised "
                            f"{errors[0].ename}: {errors[0].evalue}")
    return problems


def reference_path(page: Path) -> Path:
    return REFERENCES / f"{page.stem}.ipynb"


def reference_problems(page: Path, notebook) -> list[str]:
    """How the page's outputs differ from its stored ones."""
    path = reference_path(page)
    if not path.exists():
        return [f"{page.name}: no stored outputs at {pages.shown_path(path)}"]
    stored = nbformat.read(path, as_version=4)
    code = pages.code_cells(notebook)
    problems = []
    for number, diff in outputs.difference(stored, outputs.normalised(notebook)):
        where = (pages.where(page, notebook, code[number]) if number >= 0
                 else page.name)
        problems.append(f"{where}: outputs differ from the stored ones\n{diff}")
    return problems


def page_problems(page: Path, cache: Path, references: bool = True) -> list[str]:
    """Why the page's test fails: an unexpected error, an expected error
    that changed, or outputs that differ from the stored ones."""
    try:
        pages.front_matter(page)
    except pages.FrontMatterError as error:
        return [str(error)]
    notebook, failure = execution.executed(page, cache)
    if failure:
        return [f"{failed_cell(page, notebook, failure)} failed unexpectedly:"
                f"\n{last_line(failure)}"]
    problems = expected_error_problems(page, notebook)
    if references:
        problems += reference_problems(page, notebook)
    return problems


def write_reference(page: Path, cache: Path) -> None:
    notebook, failure = execution.executed(page, cache)
    assert not failure, failure
    REFERENCES.mkdir(exist_ok=True)
    nbformat.write(outputs.normalised(notebook), reference_path(page),
                   version=nbformat.NO_CONVERT)


# --- Small books ---------------------------------------------------------

# Entries of the repository that a small test book does not share with it.
NOT_LINKED = {"book", "tests", "_toc.yml", "_build", ".git", ".pytest_cache",
              ".hypothesis", ".benchmarks", ".ci", "__pycache__"}

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
---
"""


def small_book(folder: Path, page_files: dict[str, str]) -> Path:
    """A book in ``folder``: the repository's configuration (linked), an
    intro page and ``page_files`` (name -> text) under book/."""
    folder.mkdir(parents=True, exist_ok=True)
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (folder / entry.name).symlink_to(entry)
    (folder / "book").mkdir()
    (folder / "book" / "references.bib").symlink_to(
        ROOT / "book" / "references.bib")
    (folder / "book" / "intro.md").write_text("(intro)=\n# A small book\n")
    for name, text in page_files.items():
        (folder / "book" / name).write_text(text, encoding="utf-8")
    (folder / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n" + "".join(
            f"  - file: book/{Path(name).with_suffix('')}\n"
            for name in page_files), encoding="utf-8")
    return folder
