"""Live cells: Part I's pure-Python cells run in the reader's browser.

Part I builds its engines from plain Python (``math``, no PyTorch), so its
cells can run in the page itself, with Pyodide (CPython compiled to
WebAssembly) served by the site: no server, no account, offline once the
page is loaded. This extension (registered by ``tools/book.py``):

- fetches the Pyodide runtime of version ``PYODIDE_VERSION`` at build time
  with npm (``npm pack pyodide@VERSION``, its integrity checked against
  ``PYODIDE_INTEGRITY``) into ``_build/.pyodide/<version>/`` (never
  committed), and copies its core files into ``_build/html/_static/pyodide/``;
  a machine without npm or without network builds the book all the same,
  and the log says that live cells are off (then no page has a Run button);
- marks the live cells of each live page (``live_plan``) and adds
  ``_static/live.js`` and ``_static/live.css`` to those pages only, with a
  ``<script type="application/json" id="live-cells">`` that lists them.
  ``_static/live.js`` does the rest in the browser: Run, Reset and Stop
  buttons, an output area, and one Python interpreter per page in a Web
  Worker, started by the first Run.

Which cells are live (``live_plan``), on a live page: the pages of
``book/part1-from-scratch/``, or any page whose front matter says
``live: true`` (``live: false`` turns a Part I page off). A code cell is
live when

- it parses as Python (no IPython magics), imports only standard-library
  modules that Pyodide ships, and is not tagged ``remove-cell``, ``timing``
  or ``machine-dependent`` (timings measure the build's machine);
- every name it reads is a builtin, or was last bound by a live cell or by
  a standard-library import (an ``import math`` in the page's first cell,
  next to ``import torch``, runs in the browser before the cells: the
  page's *prelude*).

So a cell that uses PyTorch, NumPy, matplotlib or glue is not live, nor is
a cell that reads a name such a cell made. Cells tagged ``hide-input``,
``hide-cell`` or ``remove-input`` that are live run before the cells below
them but have no buttons. A skeleton, ```` ```{code-block} python ```` with
``:class: skeleton`` in an exercise, is live when the exercise's self-check
cell (the first code cell after it whose build output says "Correct") is
live: its Run runs the reader's skeleton and then that check, in place of
the hidden solution's cells.
"""

from __future__ import annotations

import ast
import base64
import builtins
import hashlib
import json
import os
import shutil
import subprocess
import sys
import symtable
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

# The npm package `pyodide` (Python 3.14.2 in WebAssembly). Its core runtime
# is what the site serves: 13.5 MB, no packages (none is needed).
PYODIDE_VERSION = "314.0.7"
PYODIDE_INTEGRITY = ("sha512-0YvXxEhfEdpLfb/XkM2BFAeMROq0iMUX2bzzH9pOttyMcWkwq"
                     "+HbE5uyuGD82LN7y2q+SNvi/6V5JEsOlD2R1A==")
CORE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm",
              "python_stdlib.zip", "pyodide-lock.json", "package.json")
FETCH_TIMEOUT = 120  # seconds, for npm pack as a whole
# npm takes the tarball from its own cache when it has it (a rebuild with no
# network), and gives up on a silent network after 30 s.
NPM_OPTIONS = ["--json", "--prefer-offline", "--fetch-retries=1",
               "--fetch-timeout=30000"]
LIVE_FOLDERS = ("book/part1-from-scratch/",)
STATIC = "pyodide"  # _build/html/_static/pyodide/
JS, CSS = "live.js", "live.css"

# Standard-library modules Pyodide does not ship, or ships without the
# ability to work in a browser (no processes, threads, sockets or terminal).
NOT_IN_PYODIDE = {
    "ctypes", "curses", "dbm", "ensurepip", "idlelib", "lib2to3", "lzma",
    "msvcrt", "multiprocessing", "nis", "readline", "socket", "sqlite3",
    "ssl", "subprocess", "test", "threading", "tkinter", "turtle",
    "turtledemo", "venv", "winreg", "winsound", "_tkinter", "concurrent",
    "asyncio", "signal", "select", "selectors", "pty", "tty", "termios",
}
STDLIB = set(sys.stdlib_module_names) - NOT_IN_PYODIDE
BUILTINS = set(dir(builtins))
NOT_LIVE_TAGS = {"remove-cell", "timing", "machine-dependent"}
HIDDEN_TAGS = {"hide-input", "hide-cell", "remove-input"}
CHECK_SAYS = "Correct"


# --- The runtime ----------------------------------------------------------


def npm_command() -> str:
    """npm, or the command the environment variable BOOK_NPM names (the
    tests name a missing one to build as a machine without npm would)."""
    return os.environ.get("BOOK_NPM") or "npm"


def integrity(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def npm_error(process: subprocess.CompletedProcess) -> str:
    """npm's one-line summary of its error (``--json`` prints it)."""
    try:
        return json.loads(process.stdout)["error"]["summary"]
    except (ValueError, KeyError, TypeError):
        lines = [line for line in process.stderr.splitlines()
                 if line.strip() and "complete log" not in line]
        return lines[0] if lines else f"exit code {process.returncode}"


def fetch(cache: Path, version: str = PYODIDE_VERSION,
          expected: str = PYODIDE_INTEGRITY) -> tuple[Path | None, str]:
    """The folder of Pyodide's core files in ``cache/<version>``, fetched
    with ``npm pack`` if it is not there yet; or None and why not."""
    folder = cache / version
    if all((folder / name).is_file() for name in CORE_FILES):
        return folder, "cached"
    npm = shutil.which(npm_command())
    if npm is None:
        return None, (f"{npm_command()!r} was not found (install Node.js "
                      "with npm to fetch Pyodide)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as temporary:
        temporary = Path(temporary)
        try:
            process = subprocess.run(
                [npm, "pack", f"pyodide@{version}", *NPM_OPTIONS,
                 "--pack-destination", str(temporary)],
                cwd=temporary, capture_output=True, text=True,
                timeout=FETCH_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as error:
            return None, f"npm pack pyodide@{version} failed: {error}"
        tarballs = list(temporary.glob("*.tgz"))
        if process.returncode != 0 or len(tarballs) != 1:
            return None, (f"npm pack pyodide@{version} failed: "
                          f"{npm_error(process)}")
        found = integrity(tarballs[0])
        if found != expected:
            return None, (f"pyodide@{version} from npm has integrity {found},"
                          f" not the pinned {expected}")
        unpacked = temporary / version
        unpacked.mkdir()
        with tarfile.open(tarballs[0]) as tar:
            for name in CORE_FILES:
                member = tar.getmember(f"package/{name}")
                source = tar.extractfile(member)
                (unpacked / name).write_bytes(source.read())
        if folder.exists():
            shutil.rmtree(folder)
        unpacked.rename(folder)
    return folder, "fetched with npm"


# --- Which cells are live -------------------------------------------------


class _ModuleScope(ast.NodeVisitor):
    """Names a cell's module-level code reads before binding them, in the
    order Python evaluates it; nested scopes are left to ``symtable``."""

    def __init__(self):
        self.bound: set[str] = set()
        self.reads: set[str] = set()

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            if node.id not in self.bound:
                self.reads.add(node.id)
        elif isinstance(node.ctx, ast.Store):
            self.bound.add(node.id)

    def visit_Assign(self, node):
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def visit_AugAssign(self, node):
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            if node.target.id not in self.bound:
                self.reads.add(node.target.id)
            self.bound.add(node.target.id)
        else:
            self.visit(node.target)

    def visit_NamedExpr(self, node):
        self.visit(node.value)
        self.visit(node.target)

    def _function(self, node):
        for decorator in node.decorator_list:
            self.visit(decorator)
        arguments = node.args
        for default in [*arguments.defaults, *arguments.kw_defaults]:
            if default is not None:
                self.visit(default)
        self.bound.add(node.name)

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node):
        for expression in [*node.decorator_list, *node.bases,
                           *(k.value for k in node.keywords)]:
            self.visit(expression)
        self.bound.add(node.name)

    def visit_Lambda(self, node):
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)

    def _comprehension(self, node):
        self.visit(node.generators[0].iter)

    visit_ListComp = visit_SetComp = visit_DictComp = _comprehension
    visit_GeneratorExp = _comprehension

    def visit_Import(self, node):
        for alias in node.names:
            self.bound.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node):
        for alias in node.names:
            self.bound.add(alias.asname or alias.name)

    def visit_ExceptHandler(self, node):
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bound.add(node.name)
        for statement in node.body:
            self.visit(statement)


@dataclass
class CellNames:
    reads: set[str]
    binds: set[str]
    modules: set[str]  # top-level names of the modules it imports


def cell_names(code: str) -> CellNames:
    """What a cell reads from the page's namespace and what it binds there
    (raises SyntaxError for code that is not plain Python)."""
    tree = ast.parse(code)
    scope = _ModuleScope()
    scope.visit(tree)
    top = symtable.symtable(code, "<cell>", "exec")
    module_bound = {s.get_name() for s in top.get_symbols()
                    if s.is_assigned() or s.is_imported()
                    or s.is_namespace()}
    nested_reads, nested_binds = set(), set()
    tables = list(top.get_children())
    while tables:
        table = tables.pop()
        tables.extend(table.get_children())
        for symbol in table.get_symbols():
            if not symbol.is_global():
                continue
            if symbol.is_referenced():
                nested_reads.add(symbol.get_name())
            if symbol.is_declared_global() and symbol.is_assigned():
                nested_binds.add(symbol.get_name())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add("." if node.level else node.module.split(".")[0])
    return CellNames(scope.reads | (nested_reads - module_bound),
                     module_bound | nested_binds, modules)


def stdlib_imports(code: str) -> list[str]:
    """The module-level imports of standard-library modules of a cell that
    is not live (``import math`` next to ``import torch``), as code."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a for a in node.names if a.name.split(".")[0] in STDLIB]
            if names:
                found.append(ast.unparse(ast.Import(names=names)))
        elif (isinstance(node, ast.ImportFrom) and not node.level
              and node.module.split(".")[0] in STDLIB):
            found.append(ast.unparse(node))
    return found


@dataclass
class LivePlan:
    """The live code cells of a page: notebook cell index -> whether its
    input is hidden; and the prelude that runs before them."""
    cells: dict[int, bool] = field(default_factory=dict)
    prelude: list[str] = field(default_factory=list)
    # Why each other code cell is not live (python -m tools.live --explain).
    reasons: dict[int, str] = field(default_factory=dict)


def live_plan(notebook) -> LivePlan:
    """Which code cells of a page's notebook are live (module docstring)."""
    plan = LivePlan()
    live_names: dict[str, bool] = {}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        try:
            names = cell_names(cell.source)
        except SyntaxError:
            names = None
        if names is None:
            why = "not plain Python (an IPython magic?)"
        elif tags & NOT_LIVE_TAGS:
            why = f"tagged {', '.join(sorted(tags & NOT_LIVE_TAGS))}"
        elif names.modules - STDLIB:
            why = ("imports " + ", ".join(sorted(names.modules - STDLIB))
                   + " (not a standard-library module of Pyodide)")
        else:
            missing = sorted(name for name in names.reads
                             if not (live_names.get(name) or name in BUILTINS
                                     and name not in live_names))
            why = ("reads " + ", ".join(missing) + " (last bound by a cell "
                   "that is not live, or never)") if missing else ""
        live = not why
        if why:
            plan.reasons[index] = why
        imported = set()
        if live:
            plan.cells[index] = bool(tags & HIDDEN_TAGS)
        else:
            for statement in stdlib_imports(cell.source):
                if statement not in plan.prelude:
                    plan.prelude.append(statement)
                imported |= cell_names(statement).binds
        for name in names.binds if names else ():
            live_names[name] = live or name in imported
    return plan


def is_live_page(source: Path, srcdir: Path, metadata: dict) -> bool:
    """A page of a live folder, or whose front matter says ``live: true``."""
    if "live" in metadata:
        return bool(metadata["live"])
    try:
        relative = source.resolve().relative_to(srcdir.resolve()).as_posix()
    except ValueError:
        return False
    return relative.startswith(LIVE_FOLDERS)


def any_live_page(srcdir: Path) -> bool:
    """Whether the book has a live page (else nothing is fetched)."""
    from tools import pages

    if any(any(srcdir.joinpath(folder).glob("*.md"))
           for folder in LIVE_FOLDERS):
        return True
    for path in srcdir.glob("book/**/*.md"):
        try:
            if pages.front_matter(path).get("live") is True:
                return True
        except pages.FrontMatterError:
            pass  # reported when Sphinx reads the page
    return False


# --- Sphinx ---------------------------------------------------------------


def runtime_folder(app) -> Path:
    return Path(app.outdir).parent / ".pyodide"


def set_up_runtime(app, config) -> None:
    """Fetch Pyodide (or say why live cells are off) before Sphinx compares
    the configuration with the last build's: ``live_runtime`` changes from
    "" to the version when live cells come on, and every page is written
    again."""
    # Jupyter Book adds every file of _static/ to every page: live.js and
    # live.css go only to the pages with live cells (add_assets).
    config.html_js_files = [f for f in config.html_js_files
                            if (f[0] if isinstance(f, tuple) else f) != JS]
    config.html_css_files = [f for f in config.html_css_files
                             if (f[0] if isinstance(f, tuple) else f) != CSS]
    config.live_runtime = ""
    app.live_files = None
    if not any_live_page(Path(app.srcdir)):
        return
    folder, how = fetch(runtime_folder(app))
    if folder is None:
        logger.info(f"[live] live cells are off: {how}. The book builds "
                    "without Run buttons.", color="red")
        return
    config.live_runtime = PYODIDE_VERSION
    app.live_files = folder
    logger.info(f"[live] Pyodide {PYODIDE_VERSION} ({how}): live cells on, "
                f"served from _static/{STATIC}/")


def mark_live_cells(app, doctree: nodes.document, docname: str) -> None:
    """Classes ``live-cell live-cell-N`` on each live cell (and skeleton),
    and the page's list of them as JSON, for _static/live.js."""
    if not app.config.live_runtime:
        return
    from tools import pages

    source = Path(app.env.doc2path(docname))
    if not pages.is_notebook(source):
        return
    try:
        front_matter = pages.front_matter(source)
    except pages.FrontMatterError:
        return
    if not is_live_page(source, Path(app.srcdir), front_matter):
        return
    notebook = pages.read_notebook(source)
    plan = live_plan(notebook)
    if not plan.cells:
        return

    def is_cell(node) -> bool:
        return (isinstance(node, nodes.container)
                and node.get("nb_element") == "cell_code")

    def is_skeleton(node) -> bool:
        return (isinstance(node, nodes.literal_block)
                and "skeleton" in node.get("classes", []))

    # Cells and skeletons in the order of the page.
    found = list(doctree.findall(lambda n: is_cell(n) or is_skeleton(n)))
    entries: dict[int, dict] = {}  # position in `found` -> entry
    for position, node in enumerate(found):
        if is_cell(node):
            index = node.get("cell_index")
            if index not in plan.cells:
                continue
            tags = (node.get("cell_metadata") or {}).get("tags") or []
            entry = {"kind": "cell", "hidden": plan.cells[index],
                     "raises": "raises-exception" in tags}
            if not any(child.get("nb_element") == "cell_code_source"
                       for child in node.children):  # remove-input
                entry["code"] = notebook.cells[index].source
        else:
            check = next((p for p in range(position + 1, len(found))
                          if is_cell(found[p])
                          and CHECK_SAYS in output_text(found[p])), None)
            if check is None or found[check].get("cell_index") \
                    not in plan.cells:
                continue
            entry = {"kind": "skeleton", "hidden": False, "raises": False,
                     "check": check}
        entries[position] = entry
    if not entries:
        return
    numbers = {position: n for n, position in enumerate(sorted(entries))}
    for position, entry in entries.items():
        entry["n"] = numbers[position]
        if entry["kind"] == "skeleton":
            # Its check, and the live cells of the solution in between.
            check = entry["check"]
            entry["check"] = numbers[check]
            entry["skip"] = [numbers[p] for p in range(position + 1, check)
                             if p in numbers]
        found[position]["classes"] += ["live-cell",
                                       f"live-cell-{entry['n']}"]
    data = {"version": PYODIDE_VERSION, "prelude": "\n".join(plan.prelude),
            "cells": [entries[position] for position in sorted(entries)]}
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    doctree.append(nodes.raw(
        "", f'<script type="application/json" id="live-cells">{text}'
        "</script>\n", format="html", classes=["live-cells"]))


def output_text(cell: nodes.container) -> str:
    return "".join(child.astext() for child in cell.children
                   if child.get("nb_element") == "cell_code_output")


def add_assets(app, pagename, templatename, context, doctree) -> None:
    if doctree is None or not app.config.live_runtime:
        return
    if any(True for _ in doctree.findall(
            lambda n: isinstance(n, nodes.raw)
            and "live-cells" in n.get("classes", []))):
        app.add_css_file(CSS)
        app.add_js_file(JS, loading_method="defer")


def copy_runtime(app, exception) -> None:
    """The core files into _build/html/_static/pyodide/ (or none at all
    when live cells are off, so the site carries no stale copy)."""
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / STATIC
    if not app.config.live_runtime or app.live_files is None:
        if target.exists():
            shutil.rmtree(target)
        return
    target.mkdir(parents=True, exist_ok=True)
    for name in CORE_FILES:
        source, copy = app.live_files / name, target / name
        if not copy.exists() or copy.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, copy)
    for stale in target.iterdir():
        if stale.name not in CORE_FILES:
            stale.unlink()


def setup(app):
    app.add_config_value("live_runtime", "", "html", types=[str])
    app.connect("config-inited", set_up_runtime)
    app.connect("doctree-resolved", mark_live_cells)
    app.connect("html-page-context", add_assets)
    app.connect("build-finished", copy_runtime)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.live [FOLDER]``: fetch the pinned Pyodide into
    FOLDER (default _build/.pyodide), as the build does.
    ``python -m tools.live --explain PAGE.md ...``: which cells are live,
    and why the others are not."""
    from tools.pages import ROOT

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--explain"]:
        from tools import pages

        for page in args[1:]:
            notebook = pages.read_notebook(Path(page))
            plan = live_plan(notebook)
            print(f"{page}: {len(plan.cells)} live cells; prelude "
                  f"{'; '.join(plan.prelude) or '(none)'}")
            for index in pages.code_cells(notebook):
                first = notebook.cells[index].source.strip().splitlines()
                state = ("live, hidden" if plan.cells.get(index) else "live"
                         if index in plan.cells else plan.reasons[index])
                print(f"  {(first or [''])[0][:40]:40}  {state}")
        return 0
    folder, how = fetch(Path(args[0]) if args else ROOT / "_build/.pyodide")
    print(f"Pyodide {PYODIDE_VERSION}: {folder} ({how})" if folder
          else f"live cells would be off: {how}")
    return 0 if folder else 1


if __name__ == "__main__":
    sys.exit(main())
