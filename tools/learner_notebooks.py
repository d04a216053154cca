"""Learner notebooks: every page of the book as a plain Jupyter notebook.

Readers open a page in Google Colab or Binder, or download it. Colab can only
open ``.ipynb`` files and knows nothing of MyST, so every page
``book/<part>/<name>.md`` gets a *learner notebook* ``book/<part>/<name>.ipynb``
next to it, made by this module and committed. sphinx-book-theme points the
page's Colab and Binder buttons at it because it exists.

A learner notebook is the page with:

- each exercise solution's code cells replaced by one stub cell
  (``# YOUR CODE HERE`` and ``raise NotImplementedError()``) and the
  solution's prose dropped; the self-check cells after it are kept;
- MyST-only syntax turned into plain Jupyter Markdown: ``{exercise}`` becomes
  a bold "Exercise N" heading numbered as in the book, admonitions become
  block quotes, labelled equations get the book's numbers with ``\\tag``,
  ``{ref}``/``{numref}``/``{eq}``/``{doc}`` become text or links to the
  published book, ``{cite}`` becomes author-year text with a reference list
  at the end, and ``{glue:text}`` becomes the value stored for the page in
  ``tests/references/<page>.ipynb``;
- a caption under each figure cell (the figure appears when the cell runs);
- the engine cells of other pages inlined where the page loads them with
  ``load_engine(page, tag)`` (pages that do so list those pages under
  ``depends_on:`` in their front matter), so the notebook runs on its own;
- a first cell that installs, pinned and only where missing, any package the
  page imports beyond the standard library, torch, numpy and matplotlib;
- no outputs, no execution counts, no machine paths.

What it converts. Directives: ``exercise``, ``solution-start`` /
``solution-end``, ``solution``, the admonitions (``note``, ``tip``,
``warning``, ``admonition``, ... and ``dropdown``, ``margin``, ``sidebar``,
``topic``, ``epigraph``), ``math``, ``code-block``, ``figure``, ``image``.
Roles: ``ref``, ``numref``, ``eq``, ``doc``, ``cite`` (``:p``, ``:t``,
``:ps``, ``:ts``, ``:year``, ...), ``glue``/``glue:text``/``glue:any``,
``math``, ``term``, ``abbr``, ``sub``, ``sup``, ``kbd``. Anything else stops
the conversion with an error naming the page, rather than leaving MyST in a
notebook.

The same conversion, keeping the solutions and the outputs, turns the
notebook that the book build executes into the page's download
(``_ext/notebook_downloads.py``).

Usage (from the repository root)::

    python -m tools.learner_notebooks            # write every learner notebook
    python -m tools.learner_notebooks --check    # list stale ones, exit 1 if any
    python -m tools.learner_notebooks book/part2-pytorch/autograd-basics.md
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python -m tools.learner_notebooks"

STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
# Colab has these (and the standard library); anything else a page imports
# gets installed by the notebook's first cell.
PREINSTALLED = {"torch", "numpy", "matplotlib", "IPython"}
LOADER = "load_engine"  # a page that loads the engines of other pages calls this
ENGINE_MAGIC = "engine_cell"

ADMONITIONS = {
    "admonition": None, "attention": "Attention", "caution": "Caution", "danger": "Danger",
    "error": "Error", "hint": "Hint", "important": "Important", "note": "Note", "seealso": "See also",
    "tip": "Tip", "warning": "Warning", "dropdown": None, "margin": None, "sidebar": None,
    "topic": None, "epigraph": None,
}
CODE_DIRECTIVES = {"code-block", "code", "sourcecode"}


class ConversionError(Exception):
    """The page uses something this module cannot turn into a plain notebook."""


# --- The book: pages, labels, numbers, bibliography ---------------------------


def front_matter(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    return (yaml.safe_load(text[4:end]) or {}) if end != -1 else {}


@dataclass
class Target:
    """Something a role can point at: a page, a section, an exercise, a figure, an equation."""

    page: Path
    kind: str
    title: str = ""  # pages and sections
    number: int | None = None  # exercises, figures and equations, numbered as the book numbers them
    anchor: str = ""  # the element's id on the published page


@dataclass
class Block:
    """A piece of a Markdown cell: plain text, a fenced code block, or a directive."""

    kind: str  # "text", "code" or "directive"
    text: str = ""  # text: the lines; code: the whole fence, verbatim
    name: str = ""  # directive name
    argument: str = ""
    options: dict = field(default_factory=dict)
    body: str = ""


FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
DIRECTIVE_INFO = re.compile(r"^\{(?P<name>[\w:.-]+)\}\s*(?P<argument>.*)$")


def split_blocks(text: str) -> list[Block]:
    """Split MyST Markdown into text, fenced code and directive blocks (top level only)."""
    lines = text.split("\n")
    blocks: list[Block] = []
    plain: list[str] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match or (match["fence"][0] == "`" and "`" in match["info"]):
            plain.append(lines[i])
            i += 1
            continue
        fence, info = match["fence"], match["info"].strip()
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = i + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = lines[i + 1:end]
        if plain:
            blocks.append(Block("text", "\n".join(plain)))
            plain = []
        directive = DIRECTIVE_INFO.match(info)
        if directive:
            options, body = directive_options(body)
            blocks.append(Block("directive", name=directive["name"], argument=directive["argument"].strip(),
                                options=options, body="\n".join(body)))
        elif fence[0] == ":":  # a colon fence without {name} is not a directive MyST knows
            raise ConversionError(f"colon fence without a directive name: {lines[i]!r}")
        else:
            blocks.append(Block("code", "\n".join(lines[i:end + 1])))
        i = end + 1
    if plain:
        blocks.append(Block("text", "\n".join(plain)))
    return blocks


def directive_options(body: list[str]) -> tuple[dict, list[str]]:
    """Split a directive's body into its options (``:key: value`` or a YAML block) and content."""
    if body and body[0].strip() == "---":
        end = body.index("---", 1)
        return yaml.safe_load("\n".join(body[1:end])) or {}, body[end + 1:]
    options = {}
    i = 0
    while i < len(body) and re.match(r"^:[\w-]+:", body[i]):
        key, _, value = body[i][1:].partition(":")
        options[key] = value.strip()
        i += 1
    return options, body[i:]


LABEL_LINE = re.compile(r"^\((?P<label>[^()\s]+)\)=\s*$")
HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
MATH_LABEL = re.compile(r"\$\$\s*\((?P<label>[^()\s]+)\)\s*$")


def figure_of(cell) -> dict:
    """The MyST-NB figure options of a code cell (caption, name), or {}."""
    figure = cell.metadata.get("mystnb", {}).get("figure", {})
    return figure if figure.get("caption") else {}



def toc_entries(root: Path) -> list[str]:
    """The files _toc.yml lists (without suffix), in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections", []) + entry.get("chapters", []))

    walk(toc.get("parts", []) + toc.get("chapters", []))
    return names

class Book:
    """What the conversion needs to know about the whole book.

    Exercises, figures and labelled equations are numbered the way Sphinx
    numbers them in this book: one sequence each through the whole book, in
    table-of-contents order (the toctree is not numbered, so there are no
    chapter prefixes).
    """

    def __init__(self, root: Path = ROOT):
        self.root = root
        config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
        self.base_url = published_url(config["repository"]["url"])
        self.repository = config["repository"]["url"].rstrip("/").removesuffix(".git").split("github.com/")[1]
        self.branch = config["repository"].get("branch", "main")
        self.bibfiles = [root / name for name in config.get("bibtex_bibfiles", [])]
        self.targets: dict[str, Target] = {}
        self.titles: dict[Path, str] = {}
        # (page, "exercise" | "figure") -> the numbers of the page's exercises or figures, in order
        self.numbered: dict[tuple[Path, str], list[int]] = {}
        self._bibliography = None
        counters = {"exercise": 0, "figure": 0, "equation": 0}
        for page in self.toc_pages():
            self._scan(page, counters)

    def toc_pages(self) -> list[Path]:
        names = toc_entries(self.root)
        return [self.root / f"{name}.md" for name in names if (self.root / f"{name}.md").exists()]

    def url(self, page: Path, anchor: str = "") -> str:
        path = page.relative_to(self.root).with_suffix(".html").as_posix()
        return f"{self.base_url}{path}" + (f"#{anchor}" if anchor else "")

    def _add(self, label: str, target: Target) -> None:
        if label in self.targets:
            other = self.targets[label].page.relative_to(self.root)
            raise ConversionError(f"label {label!r} is defined twice ({other} and {target.page.relative_to(self.root)})")
        self.targets[label] = target

    def _scan(self, page: Path, counters: dict) -> None:
        for cell in jupytext.read(page, fmt="myst").cells:
            if cell.cell_type == "code":
                figure = figure_of(cell)
                if figure:
                    self._count(page, "figure", counters)
                    if figure.get("name"):
                        self._add(figure["name"], Target(page, "figure", number=counters["figure"],
                                                         anchor=figure["name"]))
            elif cell.cell_type == "markdown":
                self._scan_markdown(page, cell.source, counters)

    def _scan_markdown(self, page: Path, text: str, counters: dict) -> None:
        for block in split_blocks(text):
            if block.kind == "text":
                pending = None
                for line in block.text.split("\n"):
                    label, heading = LABEL_LINE.match(line), HEADING.match(line)
                    math = MATH_LABEL.search(line)
                    if label:
                        pending = label["label"]
                    elif heading:
                        title = heading["title"]
                        if len(heading["hashes"]) == 1 and page not in self.titles:
                            self.titles[page] = title
                        if pending:
                            kind = "page" if len(heading["hashes"]) == 1 else "section"
                            self._add(pending, Target(page, kind, title=title,
                                                      anchor="" if kind == "page" else pending))
                        pending = None
                    elif math:
                        counters["equation"] += 1
                        self._add(math["label"], Target(page, "equation", number=counters["equation"],
                                                        anchor=f"equation-{math['label']}"))
                    elif line.strip():
                        pending = None
            elif block.kind == "directive":
                label = block.options.get("label") or block.options.get("name")
                if block.name == "exercise":
                    self._count(page, "exercise", counters)
                    if label:
                        self._add(label, Target(page, "exercise", number=counters["exercise"], anchor=label))
                elif block.name == "math" and label:
                    counters["equation"] += 1
                    self._add(label, Target(page, "equation", number=counters["equation"],
                                            anchor=f"equation-{label}"))
                elif block.name == "figure" and block.body.strip():
                    self._count(page, "figure", counters)
                    if label:
                        self._add(label, Target(page, "figure", number=counters["figure"], anchor=label))
                if block.name not in CODE_DIRECTIVES | {"math"}:
                    self._scan_markdown(page, block.body, counters)

    def _count(self, page: Path, kind: str, counters: dict) -> None:
        counters[kind] += 1
        self.numbered.setdefault((page, kind), []).append(counters[kind])

    def number(self, page: Path, kind: str, ordinal: int) -> int | None:
        """The book's number of the page's ordinal-th (from 0) exercise or figure."""
        numbers = self.numbered.get((page, kind), [])
        return numbers[ordinal] if ordinal < len(numbers) else None

    def equation_numbers(self, page: Path) -> list[int]:
        return [t.number for t in self.targets.values() if t.page == page and t.kind == "equation"]

    @property
    def bibliography(self):
        if self._bibliography is None:
            from pybtex.database import BibliographyData, parse_file

            self._bibliography = BibliographyData()
            for path in self.bibfiles:
                for key, entry in parse_file(str(path)).entries.items():
                    self._bibliography.add_entry(key, entry)
        return self._bibliography


def published_url(repository_url: str) -> str:
    """``https://github.com/ORG/REPO`` is published by GitHub Pages at ``https://ORG.github.io/REPO/``."""
    match = re.match(r"https://github\.com/(?P<org>[^/]+)/(?P<repo>[^/]+?)(\.git)?/?$", repository_url)
    if not match:
        raise ConversionError(f"repository.url in _config.yml is not a GitHub repository: {repository_url}")
    return f"https://{match['org'].lower()}.github.io/{match['repo']}/"


def notebook_pages(root: Path = ROOT) -> list[Path]:
    """Every executable page: a Markdown file under book/ with a kernelspec."""
    return sorted(p for p in (root / "book").rglob("*.md")
                  if "_build" not in p.parts and "kernelspec" in front_matter(p))


def learner_path(page: Path) -> Path:
    return page.with_suffix(".ipynb")


# --- Glued values ---------------------------------------------------------------

RECORD = "application/papermill.record/"


def glue_names(source: str) -> list[str | None]:
    """The names of the ``glue(...)`` calls of a cell, in source order (None: not a literal)."""
    try:
        tree = ast.parse(strip_magics(source))
    except SyntaxError:
        return []
    calls = sorted((node.lineno, node.col_offset, node) for node in ast.walk(tree)
                   if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "glue")
    names = []
    for *_, call in calls:
        first = call.args[0] if call.args else None
        names.append(first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None)
    return names


def glue_values(notebook) -> dict[str, str]:
    """name -> text/plain of every value a notebook glued.

    Outputs of an executed notebook name their glue key in their metadata
    (``scrapbook.name``), and stored references keep it as ``glue``. Where an
    output has no name, the values are matched, in order, with the cell's
    ``glue("name", ...)`` calls, which works wherever each call runs once with
    a literal name.
    """
    values = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        records = []
        for output in cell.get("outputs", []):
            data, metadata = output.get("data", {}), output.get("metadata", {})
            name = metadata.get("glue") or metadata.get("scrapbook", {}).get("name")
            text = data.get(f"{RECORD}text/plain")
            if text is None and name is not None:  # glued with display=True: an ordinary output
                text = data.get("text/plain")
            if text is not None:
                records.append((name, text if isinstance(text, str) else "".join(text)))
        if all(name for name, _ in records):
            values.update(records)
            continue
        names = glue_names(cell.source)
        if len(names) == len(records):
            values.update((name, text) for name, (_, text) in zip(names, records) if name)
    return values


# --- Engines loaded from other pages --------------------------------------------


def strip_magics(source: str) -> str:
    """The cell as Python: IPython magics and shell escapes commented out (line numbers kept)."""
    return "\n".join("#" + line if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))


def engine_calls(source: str, signature: ast.FunctionDef) -> list[tuple[str, str]]:
    """The (page, tag) of every ``load_engine(...)`` call in a cell, in order.

    The arguments must be literals (or left to the function's defaults): the
    pages to copy are decided before anything runs.
    """
    params = [a.arg for a in signature.args.args]
    defaults = dict(zip(params[len(params) - len(signature.args.defaults):], signature.args.defaults))
    calls = []
    for node in sorted((n for n in ast.walk(ast.parse(strip_magics(source))) if isinstance(n, ast.Call)),
                       key=lambda n: (n.lineno, n.col_offset)):
        if isinstance(node.func, ast.Name) and node.func.id == LOADER:
            arguments = {**defaults, **dict(zip(params, node.args)), **{k.arg: k.value for k in node.keywords}}
            try:
                calls.append((ast.literal_eval(arguments[params[0]]), ast.literal_eval(arguments[params[1]])))
            except (KeyError, ValueError):
                raise ConversionError(f"{LOADER}() must be called with literal page and tag arguments, "
                                      f"not {ast.unparse(node)}") from None
    return calls


def loader_definition(source: str) -> ast.FunctionDef | None:
    try:
        tree = ast.parse(strip_magics(source))
    except SyntaxError:
        return None
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == LOADER), None)


def inline_engines(cells: list, page: Path, book: Book, new_cell: Callable) -> list:
    """Replace the cell that defines ``load_engine`` by the engine cells it reads.

    In the book, ``load_engine(page, tag)`` reads a sibling page with jupytext
    and runs its cells tagged ``tag`` in a fresh namespace. A notebook opened
    on its own has neither the sibling pages nor (in Colab) jupytext, so the
    engine cells are copied in: each starts with ``%%engine_cell PAGE TAG``,
    which stores its code; ``load_engine`` then runs the stored code, as
    before, in a fresh namespace (the engines define functions with the same
    names, so they must not share one). Pages to copy are found from the
    ``load_engine`` calls and must be the page's ``depends_on`` list.
    """
    loaders = [i for i, c in enumerate(cells) if c.cell_type == "code" and loader_definition(c.source)]
    if not loaders:
        return cells
    if len(loaders) > 1:
        raise ConversionError(f"{page.name}: `def {LOADER}` appears in more than one cell")
    index = loaders[0]
    signature = loader_definition(cells[index].source)
    calls = []
    for cell in cells:
        if cell.cell_type == "code":
            calls += [c for c in engine_calls(cell.source, signature) if c not in calls]
    declared = front_matter(page).get("depends_on") or []
    if sorted({p for p, _ in calls}) != sorted(set(declared)):
        raise ConversionError(
            f"{page.name}: its {LOADER}() calls read {sorted({p for p, _ in calls})}, "
            f"but its front matter lists depends_on: {declared}")

    links = " and ".join(f"[{book.titles.get(page.parent / p, p)}]({book.url(page.parent / p)})"
                         for p in dict.fromkeys(p for p, _ in calls))
    tags = " and ".join(dict.fromkeys(f"`{t}`" for _, t in calls))
    intro = new_cell("markdown", (
        f"**The engine cells, copied here.** In the book, `{LOADER}` reads the pages {links} "
        f"and runs their cells tagged {tags}. So that this notebook runs on its own, those "
        f"cells are copied below. Each starts with `%%{ENGINE_MAGIC} PAGE TAG`, which stores "
        f"the cell's code instead of running it; `{LOADER}` then runs the stored code of one "
        "engine in a fresh namespace, as it does in the book."))
    registry = new_cell("code", (
        "from IPython.core.magic import register_cell_magic\n\n"
        "ENGINE_CELLS = {}  # (page, tag) -> the code of its engine cells, in order\n\n\n"
        "@register_cell_magic\n"
        f"def {ENGINE_MAGIC}(line, cell):\n"
        f'    """Store this cell\'s code as part of the engine `PAGE TAG` that {LOADER} runs."""\n'
        "    page, tag = line.split()\n"
        "    ENGINE_CELLS.setdefault((page, tag), []).append(cell)"))
    copied = []
    for dependency, tag in calls:
        engine = [c for c in jupytext.read(page.parent / dependency).cells
                  if c.cell_type == "code" and tag in c.metadata.get("tags", [])]
        if not engine:
            raise ConversionError(f"{page.name}: {dependency} has no code cell tagged {tag!r}")
        for cell in engine:
            copied.append(new_cell("code", f"%%{ENGINE_MAGIC} {dependency} {tag}\n{cell.source}",
                                   tags=cell.metadata.get("tags", [])))
    loader = new_cell("code", rewrite_loader(cells[index].source, signature, cells),
                      tags=cells[index].metadata.get("tags", []))
    return cells[:index] + [intro, registry, *copied, loader] + cells[index + 1:]


def rewrite_loader(source: str, signature: ast.FunctionDef, cells: list) -> str:
    """The loader cell with ``load_engine`` reading ENGINE_CELLS, and imports it no longer needs dropped."""
    lines = source.split("\n")
    page, tag = (a.arg for a in signature.args.args[:2])
    indent = " " * signature.body[0].col_offset
    body = [
        f'{indent}"""Run the engine cells stored above for `{page}` and `{tag}`; return what they define."""',
        f"{indent}namespace = {{}}",
        f'{indent}exec("\\n\\n".join(ENGINE_CELLS[({page}, {tag})]), namespace)',
        f"{indent}return namespace",
    ]
    first = min([signature.lineno] + [d.lineno for d in signature.decorator_list])
    head = lines[first - 1:signature.body[0].lineno - 1]
    lines[first - 1:signature.end_lineno] = head + body
    rewritten = "\n".join(lines)

    # Drop the imports only the old loader used (jupytext: Colab does not have it).
    others = "\n".join(strip_magics(c.source) for c in cells if c.cell_type == "code" and c.source != source)
    used = {n.id for n in ast.walk(ast.parse(others)) if isinstance(n, ast.Name)}
    tree = ast.parse(strip_magics(rewritten))
    used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    lines = rewritten.split("\n")
    for node in sorted((n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))),
                       key=lambda n: -n.lineno):
        names = [(a.asname or a.name).split(".")[0] for a in node.names]
        if not any(name in used for name in names):
            del lines[node.lineno - 1:node.end_lineno]
    text = re.sub(r"\n{4,}", "\n\n\n", "\n".join(lines)).strip("\n")
    return text


# --- Markdown: MyST to plain Jupyter Markdown -------------------------------------

# What tests/book_pages.py stores instead of a value that changes from run to run.
UNSTORED = re.compile(r"<(MEASURED|TIME|ADDRESS|ROOT|LIBRARY|TMP)>")
MEASURED = "*[measured]*"
MEASURED_NOTE = (f"> {MEASURED} stands for a number this page measures when it runs, such as a time "
                 "or a ratio of times: run the cells above to see your machine's value. The online "
                 "book shows the value of its last build.")
ROLE_OR_CODE = re.compile(r"(?<!`)\{(?P<role>[a-zA-Z][\w:+-]*)\}`(?P<content>[^`]*)`|(?P<ticks>`+)(?P<code>.+?)(?P=ticks)",
                          re.DOTALL)
EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)


@dataclass
class Conversion:
    """The state of converting one page."""

    book: Book
    page: Path
    glue: dict[str, str]
    keep_solutions: bool
    citations: list[str] = field(default_factory=list)
    exercises: int = 0  # exercises seen so far on this page
    figures: int = 0  # figures seen so far on this page
    in_solution: str | None = None  # the label of the solution being skipped or kept
    measured: bool = False  # the page quotes a value measured at run time

    def fail(self, message: str) -> ConversionError:
        return ConversionError(f"{self.page.relative_to(self.book.root)}: {message}")

    # Markdown -------------------------------------------------------------

    def markdown(self, text: str) -> str:
        parts = []
        for block in split_blocks(text):
            if block.kind == "directive" and block.name in ("solution-start", "solution-end"):
                parts.append(self.solution_marker(block))
            elif self.in_solution and not self.keep_solutions:
                continue
            elif block.kind == "text":
                parts.append(self.text(block.text))
            elif block.kind == "code":
                parts.append(block.text)
            else:
                parts.append(self.directive(block))
        return tidy("\n\n".join(p for p in parts if p.strip()))

    def solution_marker(self, block: Block) -> str:
        if block.name == "solution-start":
            if self.in_solution:
                raise self.fail(f"solution-start {block.argument} inside the solution of {self.in_solution}")
            self.in_solution = block.argument or "?"
            if self.keep_solutions:
                target = self.book.targets.get(block.argument)
                number = f" {target.number}" if target and target.number else ""
                return f"**Solution to Exercise{number}**"
            return ""
        if not self.in_solution:
            raise self.fail("solution-end without solution-start")
        self.in_solution = None
        return ""

    def directive(self, block: Block) -> str:
        name = block.name
        if name == "exercise":
            number = self.book.number(self.page, "exercise", self.exercises)
            self.exercises += 1
            heading = "**Exercise" + (f" {number}" if number and "nonumber" not in block.options else "")
            heading += f" ({self.text(block.argument)})**" if block.argument else "**"
            return f"{heading}\n\n{self.markdown(block.body)}"
        if name == "solution":  # a solution in prose only
            if not self.keep_solutions:
                return ""
            return f"**Solution**\n\n{self.markdown(block.body)}"
        if name in ADMONITIONS:
            title = self.text(block.argument) if block.argument else ADMONITIONS[name]
            body = self.markdown(block.body)
            quoted = "\n".join(f"> {line}".rstrip() for line in body.split("\n"))
            return (f"> **{title}**\n>\n" if title else "") + quoted
        if name == "math":
            return self.display_math(block.body, block.options.get("label"))
        if name in CODE_DIRECTIVES:
            return f"```{block.argument}\n{block.body}\n```"
        if name in ("figure", "image"):
            alt = block.options.get("alt", "")
            url = self.raw_file_url(block.argument)
            caption = self.markdown(block.body) if name == "figure" else ""
            number = None
            if caption:
                number = self.book.number(self.page, "figure", self.figures)
                self.figures += 1
            prefix = f"**Fig. {number}.** " if number else ""
            return f"![{alt}]({url})" + (f"\n\n{prefix}{caption}" if caption else "")
        raise self.fail(f"directive {{{name}}} has no plain-Markdown form yet: teach tools/learner_notebooks.py "
                        "(Conversion.directive) how to convert it")

    def raw_file_url(self, relative: str) -> str:
        """An image next to the page, as GitHub serves it (the notebook may be opened anywhere)."""
        path = (self.page.parent / relative).resolve().relative_to(self.book.root.resolve())
        return f"https://raw.githubusercontent.com/{self.book.repository}/{self.book.branch}/{path.as_posix()}"

    def text(self, text: str) -> str:
        """Plain Markdown text: labels, comments and roles converted; display maths numbered."""
        segments: list[tuple[bool, str]] = []  # (is maths, text), in order
        prose: list[str] = []
        math: list[str] | None = None
        indent = ""
        for line in text.split("\n"):
            if math is not None:
                closing = re.match(r"^(?P<body>.*?)\$\$\s*(\((?P<label>[^()\s]+)\))?\s*$", line)
                if closing:
                    math.append(closing["body"])
                    segments.append((True, self.display_math("\n".join(math), closing["label"], indent)))
                    math = None
                else:
                    math.append(line)
                continue
            if line.lstrip().startswith("$$"):
                segments.append((False, "\n".join(prose)))
                prose = []
                indent = line[:len(line) - len(line.lstrip())]
                single = re.match(r"^\s*\$\$(?P<body>.+?)\$\$\s*(\((?P<label>[^()\s]+)\))?\s*$", line)
                if single:
                    segments.append((True, self.display_math(single["body"], single["label"], indent)))
                else:
                    math = [line.split("$$", 1)[1]]
                continue
            if LABEL_LINE.match(line) or line.startswith("%"):
                continue  # a target, or a MyST comment
            prose.append(line)
        if math is not None:
            raise self.fail("a $$ block is not closed")
        segments.append((False, "\n".join(prose)))
        parts = [part if is_math else ROLE_OR_CODE.sub(self.role, part) for is_math, part in segments]
        return "\n".join(part for part in parts if part or len(parts) == 1)

    def display_math(self, body: str, label: str | None, indent: str = "") -> str:
        lines = body.strip("\n").split("\n")
        if label:
            target = self.book.targets.get(label)
            if target is None:
                raise self.fail(f"equation label {label!r} not found")
            lines.append(f"\\tag{{{target.number}}}")
        return "\n".join(f"{indent}{line}" if line else line for line in ["$$", *lines, "$$"])

    def role(self, match: re.Match) -> str:
        if match["ticks"]:
            return match[0]  # inline code stays as it is
        name, content = match["role"], match["content"]
        explicit = EXPLICIT.match(content)
        text, key = (explicit["text"], explicit["target"]) if explicit else (None, content)
        if name in ("ref", "numref", "eq", "doc"):
            return self.reference(name, text, key.strip())
        if name.startswith("cite"):
            return self.cite(name, content)
        if name in ("glue", "glue:text", "glue:any"):
            return self.glued(content)
        if name == "math":
            return f"${content}$"
        if name in ("term", "abbr", "sub", "sup", "kbd"):
            return {"sub": f"<sub>{content}</sub>", "sup": f"<sup>{content}</sup>",
                    "kbd": f"<kbd>{content}</kbd>"}.get(name, text or content)
        raise self.fail(f"role {{{name}}} has no plain-Markdown form yet: teach tools/learner_notebooks.py "
                        "(Conversion.role) how to convert it")

    def reference(self, role: str, text: str | None, key: str) -> str:
        if role == "doc":
            page = (self.page.parent / key).with_suffix(".md").resolve()
            if not page.exists():
                raise self.fail(f"{{doc}} target {key!r} not found")
            return f"[{text or self.book.titles.get(page, key)}]({self.book.url(page)})"
        target = self.book.targets.get(key)
        if target is None:
            raise self.fail(f"{{{role}}} target {key!r} not found")
        if target.kind == "exercise":
            default = f"Exercise {target.number}"
        elif target.kind == "figure":
            default = f"Fig. {target.number}"
        elif target.kind == "equation":
            default = f"({target.number})"
        else:
            default = target.title
        if text and role == "numref":
            text = text.replace("%s", str(target.number)).replace("{number}", str(target.number))
        shown = text or default
        if target.page == self.page:
            if target.kind in ("page", "section") and not text:
                return f"*{shown}*"
            return shown
        return f"[{shown}]({self.book.url(target.page, target.anchor)})"

    def cite(self, role: str, content: str) -> str:
        keys = [k.strip() for k in content.split(",") if k.strip()]
        for key in keys:
            if key not in self.book.bibliography.entries:
                raise self.fail(f"citation {key!r} is not in the bibliography")
            if key not in self.citations:
                self.citations.append(key)
        textual = role in ("cite:t", "cite:ts", "cite:ct", "cite:cts")
        if role in ("cite:year", "cite:yearpar"):
            years = "; ".join(self.year(k) for k in keys)
            return f"({years})" if role == "cite:yearpar" else years
        if textual:
            return "; ".join(f"{self.authors(k)} ({self.year(k)})" for k in keys)
        return "(" + "; ".join(f"{self.authors(k)}, {self.year(k)}" for k in keys) + ")"

    def authors(self, key: str) -> str:
        from pybtex.richtext import Text

        entry = self.book.bibliography.entries[key]
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [Text.from_latex(" ".join(p.prelast_names + p.last_names)).render_as("text") for p in people]
        if not names:
            return key
        if len(names) == 1:
            return names[0]
        if len(names) == 2:
            return f"{names[0]} and {names[1]}"
        return f"{names[0]} et al."

    def year(self, key: str) -> str:
        return self.book.bibliography.entries[key].fields.get("year", "n.d.")

    def glued(self, content: str) -> str:
        from myst_nb.core.variables import format_plain_text

        if "::" in content:
            raise self.fail(f"{{glue}} from another page ({content!r}) is not supported")
        key, _, fmt = content.partition(":")
        if key not in self.glue:
            raise self.fail(
                f"no stored value for glue {key!r}: store the page's outputs with\n"
                f"  python -m pytest tests/test_pages.py -n0 -k {self.page.stem} --update-references")
        if UNSTORED.search(self.glue[key]):
            # A time, or a number computed from times: the stored outputs keep no value.
            self.measured = True
            return MEASURED
        return format_plain_text(self.glue[key], fmt)

    def references_cell(self) -> str:
        """A reference list of the works the page cites, in author-year order."""
        from pybtex.plugin import find_plugin

        style = find_plugin("pybtex.style.formatting", "plain")()
        backend = find_plugin("pybtex.backends", "markdown")()
        keys = sorted(self.citations, key=lambda k: (self.authors(k), self.year(k)))
        formatted = {e.key: e for e in style.format_entries(self.book.bibliography.entries[k] for k in keys)}
        lines = ["## References", ""]
        for key in keys:
            text = formatted[key].text.render(backend)
            text = re.sub(r"\\([.()\-:!+#,])", r"\1", text).replace("\n", " ")
            lines.append(f"- {text}")
        return "\n".join(lines)


def tidy(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


# --- Notebooks ----------------------------------------------------------------------


def make_cell(kind: str, source: str, tags: list | None = None, outputs: list | None = None,
              execution_count=None) -> nbformat.NotebookNode:
    metadata = {"tags": list(tags)} if tags else {}
    if kind == "markdown":
        return nbformat.from_dict({"cell_type": "markdown", "metadata": metadata, "source": source})
    return nbformat.from_dict({"cell_type": "code", "execution_count": execution_count, "metadata": metadata,
                               "outputs": outputs or [], "source": source})


def plain_notebook(page: Path, source_notebook, book: Book, glue: dict[str, str], keep_solutions: bool,
                   intro: str) -> nbformat.NotebookNode:
    """Convert a page (read as a notebook) to plain Jupyter Markdown and code cells.

    ``keep_solutions=False`` makes the learner notebook (stubs, no outputs);
    ``True`` keeps solutions and the cells' outputs (the page's download).
    """
    state = Conversion(book, page, glue, keep_solutions)
    cells = [c for c in source_notebook.cells if not is_empty_removed_cell(c)]
    cells = inline_engines(cells, page, book, lambda kind, source, tags=None: make_cell(kind, source, tags))
    out = [make_cell("markdown", intro)]
    stubbed = set()
    for cell in cells:
        if cell.cell_type == "markdown":
            explained = state.measured
            text = state.markdown(cell.source)
            if state.measured and not explained:
                text += "\n\n" + MEASURED_NOTE
            if text:
                out.append(make_cell("markdown", text))
            continue
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if state.in_solution and not keep_solutions:
            if state.in_solution not in stubbed:
                stubbed.add(state.in_solution)
                out.append(make_cell("code", STUB))
            continue
        # Glued values are shown in the text; their records mean nothing to Jupyter.
        outputs = [o for o in cell.get("outputs", []) if not is_glue_record(o)] if keep_solutions else []
        out.append(make_cell("code", cell.source, tags, outputs,
                             cell.get("execution_count") if keep_solutions else None))
        figure = figure_of(cell)
        if figure:
            number = book.number(page, "figure", state.figures)
            state.figures += 1
            caption = state.text(str(figure["caption"]).strip())
            out.append(make_cell("markdown", (f"**Fig. {number}.** " if number else "") + caption))
    if state.in_solution:
        raise state.fail(f"solution {state.in_solution} has no solution-end")
    try:
        install = install_cell(page, out, book.root)
    except ConversionError:
        if not keep_solutions:
            raise  # Colab must be able to run the learner notebook
        install = None  # the download runs where the book's requirements are installed
    if install:
        out.insert(1, install)
    if state.citations:
        out.append(make_cell("markdown", state.references_cell()))
    # Merge neighbouring Markdown cells (a dropped solution can leave two in a row).
    merged = []
    for cell in out:
        if merged and cell.cell_type == merged[-1].cell_type == "markdown":
            merged[-1].source = merged[-1].source + "\n\n" + cell.source
        else:
            merged.append(cell)
    notebook = nbformat.from_dict({
        "nbformat": 4, "nbformat_minor": 4, "cells": merged,
        "metadata": {
            "kernelspec": source_notebook.metadata.get(
                "kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"}),
            "language_info": {"name": "python"},
        },
    })
    nbformat.validate(notebook)
    return notebook


def is_glue_record(output) -> bool:
    data = output.get("data", {})
    return bool(data) and all(mime.startswith(RECORD) for mime in data)


def is_empty_removed_cell(cell) -> bool:
    """A hidden code cell with nothing to run (e.g. the build's dependency fingerprint)."""
    if cell.cell_type != "code" or "remove-cell" not in cell.metadata.get("tags", []):
        return False
    try:
        return not ast.parse(strip_magics(cell.source)).body and "%" not in cell.source
    except SyntaxError:
        return False


def imported_modules(cells) -> set[str]:
    """Top-level modules the code cells import, except imports guarded by ``except ImportError``."""
    modules = set()
    for cell in cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in strip_magics(cell.source).split("\n")
                           if not line.lstrip().startswith(f"%%{ENGINE_MAGIC}"))
        tree = ast.parse(source)
        guarded = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(
                    isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                    for h in node.handlers):
                guarded |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


def install_cell(page: Path, cells, root: Path):
    """A first cell installing what the notebook imports beyond Colab's standard kit, if anything."""
    missing = sorted(m for m in imported_modules(cells)
                     if m not in sys.stdlib_module_names and m not in PREINSTALLED)
    if not missing:
        return None
    pins = exact_pins(root / "requirements.txt")
    distributions = importlib.metadata.packages_distributions()
    requirements = []
    for module in missing:
        names = [d.lower().replace("_", "-") for d in distributions.get(module, [module])]
        pin = next((pins[n] for n in names if n in pins), None)
        if pin is None:
            raise ConversionError(
                f"{page.name} imports {module}, which Colab may lack: pin it exactly (name==version) "
                "in requirements.txt so its learner notebook can install that version")
        requirements.append((module, pin))
    pairs = ",\n    ".join(f"({m!r}, {r!r})" for m, r in requirements)
    return make_cell("code", (
        "# Packages this notebook needs beyond torch, numpy and matplotlib, installed only where missing.\n"
        "import importlib.util\nimport subprocess\nimport sys\n\n"
        f"for module, requirement in [\n    {pairs},\n]:\n"
        "    if importlib.util.find_spec(module) is None:\n"
        '        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", requirement], check=True)'))


def exact_pins(requirements: Path) -> dict[str, str]:
    pins = {}
    if requirements.exists():
        for line in requirements.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)", line)
            if match:
                pins[match[1].lower().replace("_", "-")] = f"{match[1]}=={match[2]}"
    return pins


def learner_intro(page: Path, book: Book) -> str:
    title = book.titles.get(page, page.stem)
    return (
        f"# {title}\n\n"
        f"This notebook is the page [{title}]({book.url(page)}) of the online book, ready to run. "
        "Run the cells in order. In each exercise, replace the cell that says `# YOUR CODE HERE` "
        "with your answer, then run the check that follows it: it tells you whether your answer "
        "is right. The book's page has the worked solutions.\n\n"
        f"*Made from `{page.relative_to(book.root).as_posix()}` by `{COMMAND}`: edit the page, "
        "not this notebook.*")


def learner_notebook(page: Path, book: Book | None = None) -> nbformat.NotebookNode:
    """The learner notebook of a page (see the module docstring)."""
    book = book or Book()
    reference = book.root / "tests" / "references" / f"{page.stem}.ipynb"
    glue = glue_values(nbformat.read(reference, as_version=4)) if reference.exists() else {}
    notebook = jupytext.read(page)
    notebook.cells = drop_title(notebook.cells)
    return plain_notebook(page, notebook, book, glue, keep_solutions=False, intro=learner_intro(page, book))


def drop_title(cells: list) -> list:
    """Remove the page's label and H1 from its first Markdown cell (the intro cell repeats the title)."""
    for cell in cells:
        if cell.cell_type == "markdown":
            cell.source = re.sub(r"\A(\s*\([^()\s]+\)=\s*\n)?\s*# [^\n]*\n?", "", cell.source, count=1)
            break
    return cells


def download_notebook(page: Path, executed, glue: dict[str, str], book: Book | None = None) -> nbformat.NotebookNode:
    """The page's download: the executed notebook, with solutions and outputs, as plain Jupyter.

    ``glue`` maps each glued name to its text/plain value (MyST-NB takes the
    glue outputs out of the executed notebook and keeps them apart).
    """
    book = book or Book()
    title = book.titles.get(page, page.stem)
    intro = (f"# {title}\n\nThis notebook is the page [{title}]({book.url(page)}) of the online book, "
             "with its outputs and worked solutions; it runs on its own.")
    executed = nbformat.from_dict(executed)
    executed.cells = drop_title(executed.cells)
    glue = {**glue_values(executed), **glue}
    notebook = plain_notebook(page, executed, book, glue, keep_solutions=True, intro=intro)
    notebook.metadata["language_info"] = executed.metadata.get("language_info", {"name": "python"})
    return notebook


def solutions(page: Path) -> list[tuple[str, list[str]]]:
    """(label, code of its cells) of every exercise solution of a page, in order."""
    found, current = [], None
    for cell in jupytext.read(page).cells:
        if cell.cell_type == "markdown":
            for block in split_blocks(cell.source):
                if block.kind == "directive" and block.name == "solution-start":
                    current = (block.argument, [])
                    found.append(current)
                elif block.kind == "directive" and block.name == "solution-end":
                    current = None
        elif cell.cell_type == "code" and current is not None:
            current[1].append(cell.source)
    return found


def render(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook, version=4) + "\n"


# --- Command line -------------------------------------------------------------------


def stale_notebooks(pages: list[Path], book: Book) -> list[tuple[Path, str]]:
    """(notebook, why) for every learner notebook that differs from what its page makes now."""
    stale = []
    for page in pages:
        path = learner_path(page)
        try:
            expected = render(learner_notebook(page, book))
        except ConversionError as error:
            stale.append((path, f"cannot be made: {error}"))
            continue
        if not path.exists():
            stale.append((path, "is missing"))
        elif path.read_text(encoding="utf-8") != expected:
            stale.append((path, f"differs from what {page.name} makes now"))
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages to convert (default: every page)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; list the learner notebooks that are missing or out of date")
    args = parser.parse_args(argv)
    book = Book()
    pages = [p.resolve() for p in args.pages] or notebook_pages()
    if args.check:
        stale = stale_notebooks(pages, book)
        for path, why in stale:
            print(f"{path.relative_to(ROOT)} {why}")
        if stale:
            print(f"Run `{COMMAND}` to make them again.")
        return 1 if stale else 0
    for page in pages:
        path = learner_path(page)
        text = render(learner_notebook(page, book))
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
