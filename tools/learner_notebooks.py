"""Learner notebooks: every page of the book as a plain Jupyter notebook.

Colab opens only ``.ipynb`` files and knows nothing of MyST, so each page
``book/<part>/<name>.md`` has a *learner notebook* ``<name>.ipynb`` next to it,
made here and committed; the page's Colab and Binder buttons open it. It is
the page with:

- each exercise solution's code replaced by one cell, the exercise's
  skeleton (a ``code-block`` of class ``skeleton`` in the exercise, taken out
  of its text) or else ``STUB``, tagged ``answer``, and its prose dropped;
  the self-checks after it kept;
- no bookkeeping: the book's ``glue`` calls and its ``myst_nb`` import are
  taken out of the code (the text shows the glued values), and a cell left
  empty is dropped;
- MyST as plain Jupyter Markdown: exercises as bold "Exercise N" numbered as
  in the book, admonitions as block quotes, labelled equations numbered with
  ``\\tag``, ``{ref}``/``{numref}``/``{eq}``/``{doc}`` as text or links to the
  published book, ``{cite}`` as author-year with a reference list, and
  ``{glue:text}`` as the value the page glued when it ran (*[measured]* if
  glued in a cell tagged ``timing`` or ``machine-dependent``);
- figure captions, an intro cell, and a first cell installing what the page
  imports beyond Colab's kit; no outputs.

Pages are read as MyST-NB reads them (``tools/pages.py``) and their Markdown
by myst-parser's markdown-it parser; blocks are replaced by its tokens' line
ranges. A directive or role with no conversion here stops with an error that
names the page. The same conversion, keeping solutions and outputs, makes each
page's download (``download_notebook``).

    python -m tools.learner_notebooks            # write every learner notebook
    python -m tools.learner_notebooks --check    # list stale ones, exit 1 if any
    python -m tools.learner_notebooks book/part2-pytorch/autograd-basics.md
"""

from __future__ import annotations

import argparse
import ast
import copy
import functools
import importlib.metadata
import re
import sys
from collections import namedtuple
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml
from docutils.parsers.rst.directives.misc import TestDirective
from myst_nb.core.read import MystMetadataParsingError
from myst_nb.core.variables import format_plain_text
from myst_nb.ext.glue import extract_glue_data_cell
from myst_parser.parsers.directives import parse_directive_text
from pybtex.database import parse_file
from pybtex.plugin import find_plugin
from pybtex.richtext import Text

from tools import execution
from tools.outputs import MEASURED_TAGS, same_text
from tools.pages import (ROOT, markdown_parser, notebook_pages, read_notebook,
                         toc_files)

COMMAND = "python -m tools.learner_notebooks"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
ANSWER = "answer"  # the tag of the cell a reader fills in: a skeleton or STUB
# Colab has these and the standard library; the first cell installs anything else.
PREINSTALLED = {"torch", "numpy", "matplotlib", "IPython"}
ADMONITIONS = {name: name.title() for name in (
    "attention", "caution", "danger", "error", "hint", "important", "note", "tip", "warning")}
ADMONITIONS |= {"seealso": "See also"} | dict.fromkeys(
    ("admonition", "dropdown", "margin", "sidebar", "topic", "epigraph"))
MEASURED = "*[measured]*"
MEASURED_NOTE = (
    f"> {MEASURED} stands for a number this page measures when it runs, such as a time "
    "or a ratio of times: run the cells above to see your machine's value. The online "
    "book shows the value of its last build.")

Directive = namedtuple("Directive", "name argument options body")


class ConversionError(Exception):
    """The page uses something this module cannot turn into a plain notebook."""


def directive_of(token) -> Directive | None:
    """The directive of a ```{name} fence token; None for anything else.

    docutils' TestDirective accepts any option, so myst-parser reads every
    directive's options as it reads them for the book, without their spec.
    """
    if token.type not in ("fence", "colon_fence") or not token.info.startswith("{"):
        return None
    name, _, argument = token.info[1:].partition("}")
    parsed = parse_directive_text(TestDirective, argument.strip(), token.content)
    if parsed.warnings:
        raise ConversionError(f"{{{name}}}: {parsed.warnings[0].msg}")
    return Directive(name, " ".join(parsed.arguments), parsed.options, "\n".join(parsed.body))


def figure_of(cell) -> dict:
    """The MyST-NB figure options of a code cell (caption, name), or {}."""
    figure = cell.metadata.get("mystnb", {}).get("figure", {})
    return figure if figure.get("caption") else {}


# --- The book: labels, numbers, bibliography -----------------------------------


# What a role can point at: a page or section (title), an exercise, a figure or an
# equation (number); anchor is its id on the published page.
Target = namedtuple("Target", "page kind title number anchor")


class Book:
    """Titles, labels and numbers of the whole book, and its bibliography.

    Exercises, figures and labelled equations are numbered as Sphinx numbers
    them in this book: one sequence each through the book in table-of-contents
    order (the toctree is not numbered, so there are no chapter prefixes).
    """

    def __init__(self, root: Path = ROOT):
        self.root = root
        config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
        self.base_url = published_url(config["repository"]["url"])
        self.bibliography = {}
        for name in config.get("bibtex_bibfiles", []):
            self.bibliography.update(parse_file(str(root / name)).entries)
        self.targets: dict[str, Target] = {}
        self.titles: dict[Path, str] = {}
        self.numbers: dict[tuple[Path, str], list[int]] = {}  # each page's, in page order
        self.counters = {"exercise": 0, "figure": 0, "equation": 0}
        for page in toc_files(root):
            try:
                cells = read_notebook(page).cells
            except (OSError, MystMetadataParsingError):
                continue  # the build reports a missing or broken page
            for cell in cells:
                if cell.cell_type == "code" and figure_of(cell):
                    self.count(page, "figure", figure_of(cell).get("name"))
                elif cell.cell_type == "markdown":
                    self.scan(page, cell.source)

    def scan(self, page: Path, text: str) -> None:
        """Record the title, labels and numbered things of a piece of a page's Markdown."""
        tokens = markdown_parser().parse(text)
        for i, token in enumerate(tokens):
            following = tokens[i + 1] if i + 1 < len(tokens) else token
            if token.type == "heading_open" and token.tag == "h1":
                self.titles.setdefault(page, following.content)  # the heading's inline text
            elif token.type == "myst_target" and following.type == "heading_open":
                whole = following.tag == "h1"
                self.add(token.content, Target(page, "page" if whole else "section",
                                               tokens[i + 2].content, None,
                                               "" if whole else token.content))
            elif token.type == "math_block_label":
                self.count(page, "equation", token.info, f"equation-{token.info}")
            elif directive := directive_of(token):
                if directive.name == "exercise":
                    self.count(page, "exercise", directive.options.get("label"))
                self.scan(page, directive.body)

    def count(self, page: Path, kind: str, label: str | None, anchor: str = "") -> None:
        self.counters[kind] += 1
        self.numbers.setdefault((page, kind), []).append(self.counters[kind])
        if label:
            self.add(label, Target(page, kind, "", self.counters[kind], anchor or label))

    def add(self, label: str, target: Target) -> None:
        if label in self.targets:
            pages = sorted({self.targets[label].page.name, target.page.name})
            raise ConversionError(f"label {label!r} is defined twice (in {' and '.join(pages)})")
        self.targets[label] = target

    def number(self, page: Path, kind: str, ordinal: int) -> int | None:
        """The book's number of the page's ordinal-th (from 0) exercise or figure."""
        numbers = self.numbers.get((page, kind), [])
        return numbers[ordinal] if ordinal < len(numbers) else None

    def url(self, page: Path, anchor: str = "") -> str:
        path = page.relative_to(self.root).with_suffix(".html").as_posix()
        return f"{self.base_url}{path}" + (f"#{anchor}" if anchor else "")


@functools.lru_cache(maxsize=1)
def cached_book(root: Path, stamps: tuple) -> Book:
    return Book(root)


def current_book(root: Path = ROOT) -> Book:
    """The Book as its files are now, made again only when one changes: the build asks
    for it once for each page's download."""
    files = [root / "_config.yml", root / "_toc.yml", *toc_files(root)]
    return cached_book(root, tuple(f.stat().st_mtime_ns for f in files if f.exists()))


def published_url(repository: str) -> str:
    """GitHub Pages publishes ``https://github.com/ORG/REPO`` at ``https://org.github.io/REPO/``."""
    github = re.match(r"https://github\.com/([^/]+)/([^/]+?)(\.git)?/?$", repository)
    if not github:
        raise ConversionError(f"repository.url in _config.yml is not on GitHub: {repository}")
    return f"https://{github[1].lower()}.github.io/{github[2]}/"


# --- Glued values ------------------------------------------------------------------


def glue_values(notebook, mask_measured: bool) -> dict[str, str]:
    """name -> text/plain of each value an executed notebook glued, found by MyST-NB's
    glue extractor (which also takes the glue records out of the outputs, in place).

    With ``mask_measured``, a value glued in a cell tagged timing or
    machine-dependent is MEASURED: it changes from run to run.
    """
    values = {}
    for cell in notebook.cells:
        tags = set(cell.metadata.get("tags", []))
        for name, output in extract_glue_data_cell(cell) if cell.cell_type == "code" else []:
            text = output.get("data", {}).get("text/plain")
            if text is not None:
                values[name] = MEASURED if mask_measured and MEASURED_TAGS & tags else "".join(text)
    return values


def page_glue(page: Path, root: Path) -> dict[str, str]:
    """The values a page glues, from its run in the execution cache."""
    notebook, error = execution.executed(page, execution.cache_path(root / "_build"))
    if error:
        raise ConversionError(f"the page fails when it runs, so its glued values are unknown:"
                              f"\n{error}")
    return glue_values(notebook, mask_measured=True)


# --- Markdown: MyST to plain Jupyter Markdown -------------------------------------

# Inline tokens have line ranges but no columns, so the roles the parser found in a block
# are located in its source with this pattern; it matches code spans too, to skip them.
ROLE_OR_CODE = re.compile(r"\{(?P<name>[a-zA-Z][\w:+-]*)\}`(?P<content>[^`]*)`"
                          r"|(?P<ticks>`+).+?(?P=ticks)", re.DOTALL)
EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)


def top_level_blocks(tokens) -> list[tuple]:
    """(opening token, [(name, content) of the roles in it]) of each top-level block."""
    blocks = []
    for token in tokens:
        if token.level == 0 and token.nesting >= 0:
            blocks.append((token, []))
        elif token.type in ("myst_target", "math_block_label") or directive_of(token):
            # Converting these inside a list, quote or table would need its markers.
            raise ConversionError(f"{token.type} inside a list, quote or table is not "
                                  f"supported: {(token.info or token.content)[:60]!r}")
        elif token.type == "inline":
            blocks[-1][1].extend((child.meta["name"], child.content)
                                 for child in token.children if child.type == "myst_role")
    return blocks


@dataclass
class Conversion:
    """The state of converting one page."""

    book: Book
    page: Path
    keep_solutions: bool  # False: the learner notebook; True: the download
    glue: dict[str, str] | None = None  # None: read from the execution cache when needed
    citations: list[str] = field(default_factory=list)
    exercises: int = 0  # exercises met so far on this page
    exercise: str | None = None  # the label of the exercise being converted
    skeletons: dict[str, str] = field(default_factory=dict)  # label -> code
    figures: int = 0  # figures met so far on this page
    in_solution: str | None = None  # the label of the solution being dropped or kept
    measured: bool = False  # the page quotes a value measured at run time
    titled: bool = False  # the page's title is met (the intro cell repeats it)

    def cells(self, source) -> list:
        """The page's cells converted, with a stub for each solution's code unless kept."""
        cells, stubbed, keep = [], set(), self.keep_solutions
        for cell in source.cells:
            if cell.cell_type == "markdown":
                explained = self.measured
                text = self.markdown(cell.source)
                if self.measured and not explained:
                    text += "\n\n" + MEASURED_NOTE
                if text:
                    cells.append(make_cell("markdown", text))
            elif cell.cell_type != "code":
                continue
            elif self.in_solution and not keep:
                if self.in_solution not in stubbed:
                    stubbed.add(self.in_solution)
                    cells.append(make_cell(
                        "code", self.skeletons.get(self.in_solution, STUB), [ANSWER]))
            elif code := without_bookkeeping(cell.source):
                cells.append(make_cell("code", code, cell.metadata.get("tags", []),
                                       cell.get("outputs", []) if keep else [],
                                       cell.get("execution_count") if keep else None))
                if figure_of(cell):
                    caption = self.markdown(str(figure_of(cell)["caption"]).strip())
                    cells.append(make_cell("markdown", self.caption(caption)))
        if self.in_solution:
            raise ConversionError(f"solution {self.in_solution} has no solution-end")
        return cells

    def markdown(self, text: str) -> str:
        """MyST Markdown as plain Markdown: each top-level block that needs it replaced."""
        lines: list[str | None] = text.split("\n")
        for token, roles in top_level_blocks(markdown_parser().parse(text)):
            start, end = token.map
            end += token.type == "amsmath"  # its map ends on its last line, not after it
            source = "\n".join(lines[start:end])
            replacement = self.block(token, source, roles)
            if replacement != source:
                lines[start:end] = [replacement] + [None] * (end - start - 1)
        text = "\n".join(line for line in lines if line is not None)
        return re.sub(r"\n{3,}", "\n\n", text).strip("\n")

    def block(self, token, source: str, roles: list[tuple[str, str]]) -> str:
        directive = directive_of(token)
        if directive and directive.name in ("solution-start", "solution-end"):
            return self.solution_marker(directive)
        if self.in_solution and not self.keep_solutions:
            return ""
        if directive:
            return self.directive(*directive)
        if token.type in ("myst_target", "myst_line_comment"):
            return ""
        if token.type == "heading_open" and token.tag == "h1" and not self.titled:
            self.titled = True
            return ""
        if token.type in ("math_block", "math_block_label"):
            return self.display_math(token.content, token.info)
        if token.type == "colon_fence":
            raise ConversionError(f"a colon fence without a directive name: {source[:60]!r}")
        return self.inline(source, roles) if roles else source

    def solution_marker(self, directive: Directive) -> str:
        if directive.name == "solution-end":
            if not self.in_solution:
                raise ConversionError("solution-end without solution-start")
            self.in_solution = None
            return ""
        if self.in_solution:
            raise ConversionError(f"solution-start inside the solution of {self.in_solution}")
        self.in_solution = directive.argument or "?"
        target = self.book.targets.get(directive.argument)
        number = f" {target.number}" if target and target.number else ""
        return f"**Solution to Exercise{number}**" if self.keep_solutions else ""

    def directive(self, name: str, argument: str, options: dict, body: str) -> str:
        if name == "exercise":
            number = self.book.number(self.page, "exercise", self.exercises)
            self.exercises += 1
            self.exercise = options.get("label")
            heading = "**Exercise" + (f" {number}" if number and "nonumber" not in options else "")
            heading += f" ({self.markdown(argument)})**" if argument else "**"
            return f"{heading}\n\n{self.markdown(body)}"
        if name == "code-block":
            if "skeleton" in str(options.get("class", "")).split() \
                    and self.exercise and not self.keep_solutions:
                self.skeletons[self.exercise] = body.strip("\n")
                return ""  # it becomes the exercise's code cell
            return f"```{argument.split(' ')[0] or 'python'}\n{body}\n```"
        if name in ADMONITIONS:
            title = self.markdown(argument) if argument else ADMONITIONS[name]
            quoted = "\n".join(f"> {line}".rstrip() for line in self.markdown(body).split("\n"))
            return (f"> **{title}**\n>\n" if title else "") + quoted
        raise ConversionError(f"directive {{{name}}} has no plain-Markdown form yet: teach "
                              "tools/learner_notebooks.py (Conversion.directive) to convert it")

    def caption(self, text: str) -> str:
        """A figure's caption, with the figure's number in the book."""
        number = self.book.number(self.page, "figure", self.figures)
        self.figures += 1
        return (f"**Fig. {number}.** " if number else "") + text

    def display_math(self, body: str, label: str | None) -> str:
        lines = body.strip("\n").split("\n")
        if label:
            if label not in self.book.targets:
                raise ConversionError(f"equation label {label!r} not found")
            lines.append(f"\\tag{{{self.book.targets[label].number}}}")
        return "\n".join(["$$", *lines, "$$"])

    def inline(self, source: str, roles: list[tuple[str, str]]) -> str:
        """The block's source with each role the parser found in it converted."""
        found = iter(roles)

        def convert(match: re.Match) -> str:
            if match["ticks"]:
                return match[0]  # inline code stays as it is
            if next(found, None) != (match["name"], match["content"]):
                raise ConversionError(f"cannot place the roles of {source[:60]!r}")
            return self.role(match["name"], match["content"])

        converted = ROLE_OR_CODE.sub(convert, source)
        if next(found, None):
            raise ConversionError(f"cannot place the roles of {source[:60]!r}")
        return converted

    def role(self, name: str, content: str) -> str:
        explicit = EXPLICIT.match(content)
        text, key = (explicit["text"], explicit["target"]) if explicit else (None, content)
        if name in ("ref", "numref", "eq", "doc"):
            return self.reference(name, text, key.strip())
        if name in ("cite", "cite:p", "cite:ps", "cite:t", "cite:ts"):
            return self.cite(name, content)
        if name in ("glue", "glue:text", "glue:any"):
            return self.glued(content)
        raise ConversionError(f"role {{{name}}} has no plain-Markdown form yet: teach "
                              "tools/learner_notebooks.py (Conversion.role) to convert it")

    def reference(self, role: str, text: str | None, key: str) -> str:
        if role == "doc":
            page = (self.page.parent / key).with_suffix(".md").resolve()
            if not page.exists():
                raise ConversionError(f"{{doc}} target {key!r} not found")
            return f"[{text or self.book.titles.get(page, key)}]({self.book.url(page)})"
        target = self.book.targets.get(key)
        if target is None:
            raise ConversionError(f"{{{role}}} target {key!r} not found")
        number = str(target.number)
        default = {"exercise": f"Exercise {number}", "figure": f"Fig. {number}",
                   "equation": f"({number})"}.get(target.kind, target.title)
        if text and role == "numref":
            text = text.replace("%s", number).replace("{number}", number)
        shown = text or default
        if target.page != self.page:
            return f"[{shown}]({self.book.url(target.page, target.anchor)})"
        return f"*{shown}*" if target.kind in ("page", "section") and not text else shown

    def cite(self, role: str, content: str) -> str:
        keys = [k.strip() for k in content.split(",") if k.strip()]
        for key in keys:
            if key not in self.book.bibliography:
                raise ConversionError(f"citation {key!r} is not in the bibliography")
            if key not in self.citations:
                self.citations.append(key)
        if role in ("cite:t", "cite:ts"):
            return "; ".join(f"{self.authors(k)} ({self.year(k)})" for k in keys)
        return "(" + "; ".join(f"{self.authors(k)}, {self.year(k)}" for k in keys) + ")"

    def authors(self, key: str) -> str:
        entry = self.book.bibliography[key]
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [str(Text.from_latex(" ".join(p.prelast_names + p.last_names)))
                 for p in people]
        return f"{names[0]} et al." if len(names) > 2 else " and ".join(names) or key

    def year(self, key: str) -> str:
        return self.book.bibliography[key].fields.get("year", "n.d.")

    def glued(self, content: str) -> str:
        if self.glue is None:
            self.glue = page_glue(self.page, self.book.root)
        key, _, fmt = content.partition(":")
        if key not in self.glue:
            raise ConversionError(f"the page glues no value {key!r} when it runs")
        if self.glue[key] == MEASURED:
            self.measured = True
            return MEASURED
        return format_plain_text(self.glue[key], fmt)

    def references_cell(self) -> str:
        """A reference list of the works the page cites, in author-year order."""
        style = find_plugin("pybtex.style.formatting", "plain")()
        backend = find_plugin("pybtex.backends", "markdown")()
        keys = sorted(self.citations, key=lambda k: (self.authors(k), self.year(k)))
        entries = style.format_entries(self.book.bibliography[k] for k in keys)
        texts = [entry.text.render(backend).replace("\n", " ") for entry in entries]
        # The Markdown backend escapes punctuation that Jupyter shows as it is.
        return "## References\n\n" + "\n".join(
            "- " + re.sub(r"\\([.()\-:!+#,])", r"\1", text) for text in texts)


# --- Notebooks ----------------------------------------------------------------------


def make_cell(kind: str, source: str, tags=(), outputs=(), execution_count=None):
    cell = {"cell_type": kind, "metadata": {"tags": list(tags)} if tags else {}, "source": source}
    if kind == "code":
        cell |= {"execution_count": execution_count, "outputs": list(outputs)}
    return nbformat.from_dict(cell)


def plain_notebook(page: Path, source, state: Conversion, intro: str) -> nbformat.NotebookNode:
    """A page (read as a notebook) as plain Jupyter Markdown and code cells: without
    solutions and outputs (the learner notebook) or with them (the download)."""
    try:
        cells = [make_cell("markdown", intro), *state.cells(source)]
        install = install_cells(cells, state.book.root, strict=not state.keep_solutions)
    except ConversionError as error:  # named once here, for every message
        raise ConversionError(f"{page.relative_to(state.book.root).as_posix()}: {error}") from None
    cells[1:1] = install
    if state.citations:
        cells.append(make_cell("markdown", state.references_cell()))
    merged = []  # neighbouring Markdown cells merged (a dropped solution can leave two)
    for cell in cells:
        if merged and cell.cell_type == merged[-1].cell_type == "markdown":
            merged[-1].source += "\n\n" + cell.source
        else:
            merged.append(cell)
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    metadata = {"kernelspec": source.metadata.get("kernelspec", kernel),
                "language_info": {"name": "python"}}
    notebook = nbformat.from_dict({"nbformat": 4, "nbformat_minor": 4, "cells": merged,
                                   "metadata": metadata})
    nbformat.validate(notebook)
    return notebook


def imported_modules(cells) -> set[str]:
    """Top-level modules the code cells import (magics and shell escapes left out)."""
    modules = set()
    for cell in (c for c in cells if c.cell_type == "code"):
        lines = [line for line in cell.source.split("\n")
                 if not line.lstrip().startswith(("%", "!"))]
        modules |= imports(ast.parse("\n".join(lines)))
    return modules


def imports(node: ast.AST) -> set[str]:
    """Modules imported under an AST node, except in a ``try`` that catches ImportError
    or ModuleNotFoundError: that code runs without them."""
    if isinstance(node, ast.Import):
        return {alias.name.split(".")[0] for alias in node.names}
    if isinstance(node, ast.ImportFrom):
        return {node.module.split(".")[0]} if node.level == 0 and node.module else set()
    guarded = isinstance(node, ast.Try) and any(
        getattr(h.type, "id", None) in ("ImportError", "ModuleNotFoundError")
        for h in node.handlers)
    return set().union(*(imports(child) for child in ast.iter_child_nodes(node)
                         if not (guarded and child in node.body)))


def without_bookkeeping(code: str) -> str:
    """A cell's code without its top-level ``glue(...)`` calls (loops of them
    included) and the ``try`` that imports ``glue`` from ``myst_nb``."""
    lines = code.split("\n")
    try:  # magics and shell escapes read as ``pass``, so lines keep their numbers
        tree = ast.parse("\n".join("pass" if line.lstrip().startswith(("%", "!"))
                                   else line for line in lines))
    except SyntaxError:
        return code
    dropped = {i for node in tree.body if bookkeeping(node)
               for i in range(node.lineno - 1, node.end_lineno)}
    if not dropped:
        return code
    kept = "\n".join(line for i, line in enumerate(lines) if i not in dropped)
    return re.sub(r"\n{3,}", "\n\n", kept).strip("\n")


def bookkeeping(node: ast.stmt) -> bool:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return getattr(node.value.func, "id", None) == "glue"
    if isinstance(node, ast.For) and not node.orelse:
        # Loops of glue calls, with the assignments that name what is glued.
        glued = [bookkeeping(child) for child in node.body]
        return any(glued) and all(
            is_glue or isinstance(child, ast.Assign)
            for is_glue, child in zip(glued, node.body))
    return isinstance(node, ast.Try) and any(
        isinstance(child, ast.ImportFrom) and (child.module or "").startswith("myst_nb")
        for child in node.body)


def install_cells(cells, root: Path, strict: bool) -> list:
    """A cell installing what the notebook imports beyond Colab's kit, pinned as in
    requirements.txt; none if it needs nothing more. Not ``strict`` (the download, which
    runs where the book's requirements are installed), none if a module is not pinned."""
    missing = sorted(m for m in imported_modules(cells)
                     if m not in sys.stdlib_module_names and m not in PREINSTALLED)
    if not missing:
        return []
    requirements = root / "requirements.txt"
    text = requirements.read_text(encoding="utf-8") if requirements.exists() else ""
    pins = {name.lower().replace("_", "-"): f"{name}=={version}" for name, version
            in re.findall(r"(?m)^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)", text)}
    distributions = importlib.metadata.packages_distributions()
    pairs = []
    for module in missing:
        names = [d.lower().replace("_", "-") for d in distributions.get(module, [module])]
        pin = next((pins[n] for n in names if n in pins), None)
        if pin is None and not strict:
            return []
        if pin is None:
            raise ConversionError(
                f"the page imports {module}, which Colab may lack: pin it exactly "
                "(name==version) in requirements.txt so its learner notebook can install it")
        pairs.append(f"({module!r}, {pin!r})")
    listed = ",\n    ".join(pairs)
    return [make_cell("code", (
        "# Packages this notebook needs beyond torch, numpy and matplotlib, "
        "installed only where missing.\n"
        "import importlib.util\nimport subprocess\nimport sys\n\n"
        f"for module, requirement in [\n    {listed},\n]:\n"
        "    if importlib.util.find_spec(module) is None:\n"
        '        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", requirement],'
        " check=True)"))]


def learner_path(page: Path) -> Path:
    return page.with_suffix(".ipynb")


def learner_notebook(page: Path, book: Book | None = None) -> nbformat.NotebookNode:
    """The learner notebook of a page (see the module docstring)."""
    book = book or current_book()
    title = book.titles.get(page, page.stem)
    intro = (
        f"# {title}\n\n"
        f"This notebook is the page [{title}]({book.url(page)}) of the online book, ready to "
        "run. Run the cells in order. In each exercise, fill in the `...` of its code cell "
        "(or replace the cell that says `# YOUR CODE HERE`) with your answer, then run the "
        "check that follows it: it tells you whether your answer is right. The book's "
        "page has the worked solutions.\n\n"
        f"*Made from `{page.relative_to(book.root).as_posix()}` by `{COMMAND}`: edit the page, "
        "not this notebook.*")
    return plain_notebook(page, read_notebook(page), Conversion(book, page, False), intro)


def download_notebook(page: Path, executed, book: Book | None = None) -> nbformat.NotebookNode:
    """The page's download: the executed page, with solutions and outputs, as plain Jupyter.

    Glued values come from ``executed`` itself, and their records leave the
    outputs (they mean nothing to Jupyter; the text shows the values).
    """
    book = book or current_book()
    title = book.titles.get(page, page.stem)
    intro = (f"# {title}\n\nThis notebook is the page [{title}]({book.url(page)}) of the "
             "online book, with its outputs and worked solutions; it runs on its own.")
    executed = copy.deepcopy(executed)
    glue = glue_values(executed, mask_measured=False)
    notebook = plain_notebook(page, executed, Conversion(book, page, True, glue), intro)
    notebook.metadata["language_info"] = executed.metadata.get("language_info",
                                                               {"name": "python"})
    return notebook


def solutions(page: Path) -> list[tuple[str, list[str]]]:
    """(label, code of its cells, bookkeeping left out) of every exercise solution of a
    page, in order."""
    found, current = [], None
    for cell in read_notebook(page).cells:
        if cell.cell_type == "code" and current is not None:
            if code := without_bookkeeping(cell.source):
                current[1].append(code)
        elif cell.cell_type == "markdown":
            for directive in filter(None, map(directive_of, markdown_parser().parse(cell.source))):
                if directive.name == "solution-start":
                    current = (directive.argument, [])
                    found.append(current)
                elif directive.name == "solution-end":
                    current = None
    return found


def render(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook, version=4) + "\n"


# --- Command line -------------------------------------------------------------------


def stale_notebooks(pages: list[Path], book: Book | None = None) -> list[tuple[Path, str]]:
    """(notebook, why) for each learner notebook that differs from what its page makes
    now by more than float noise in its numbers (glued values move in their last digits)."""
    book = book or current_book()
    stale = []
    for page in pages:
        path = learner_path(page)
        try:
            fresh = render(learner_notebook(page, book))
        except ConversionError as error:
            stale.append((path, f"cannot be made: {error}"))
            continue
        if not path.exists():
            stale.append((path, "is missing"))
        elif not same_text(path.read_text(encoding="utf-8"), fresh):
            stale.append((path, f"differs from what {page.name} makes now"))
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages (default: every page)")
    parser.add_argument("--check", action="store_true", help="write nothing; list the "
                        "learner notebooks that are missing or out of date")
    args = parser.parse_args(argv)
    book = current_book()
    stale = stale_notebooks([p.resolve() for p in args.pages] or notebook_pages(), book)
    if args.check:
        for path, why in stale:
            print(f"{path.relative_to(ROOT)} {why}")
        if stale:
            print(f"Run `{COMMAND}` to make them again.")
        return 1 if stale else 0
    for path, _ in stale:  # a page that cannot be converted raises its ConversionError here
        path.write_text(render(learner_notebook(path.with_suffix(".md"), book)), encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
