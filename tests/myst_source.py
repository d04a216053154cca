"""Read the MyST Markdown source of a page: its prose, its directives, its code cells.

The checks on what a page *says* (numbers in the prose, glue names,
exercise structure) need the source with line numbers, which the notebook
made by jupytext no longer has. This is a small line scanner that follows
the CommonMark rules for fences that the pages use:

- a fence opens with three or more backticks, tildes or (MyST colon fence)
  colons and an info string, and closes with a fence of the same character,
  at least as long, with no info string;
- ``{code-cell}`` and the other code directives, and plain fences
  (```` ```python ````), hold code; every other directive (``{exercise}``,
  ``{note}``, ``{math}`` ...) holds prose, after its ``:option:`` lines or
  its ``---`` YAML option block;
- the front matter, HTML comments, ``(label)=`` targets and ``+++`` cell
  breaks are not prose; the ``caption`` and ``alt`` text of a code cell's
  figure options is.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\{(?P<name>[^}\s]+)\}\s*(?P<argument>.*)$")
OPTION = re.compile(r"^\s*:(?P<key>[\w-]+):\s*(?P<value>.*)$")
# Directives whose body is code or data, never prose.
CODE_DIRECTIVES = {"code-cell", "code", "code-block", "sourcecode", "literalinclude",
                   "raw", "eval-rst", "bibliography", "nb-exec-table"}
# Keys of a code cell's YAML options whose text the reader sees.
PROSE_KEYS = ("caption", "alt")


@dataclass
class Block:
    """A fenced block: a directive (``name`` set) or a plain code fence (``name`` '')."""

    name: str
    argument: str
    line: int  # 1-based line of the opening fence
    fence: str
    options: dict = field(default_factory=dict)
    body: list[tuple[int, str]] = field(default_factory=list)  # (line, text) after options
    option_error: str = ""

    @property
    def is_code(self) -> bool:
        return self.name == "" or self.name in CODE_DIRECTIVES

    @property
    def source(self) -> str:
        return "\n".join(text for _, text in self.body)


@dataclass
class Page:
    path: Path
    prose: list[tuple[int, str]]  # (line, text) of every prose line
    blocks: list[Block]  # every fenced block, nested ones included, in source order

    @property
    def code_cells(self) -> list[Block]:
        return [b for b in self.blocks if b.name == "code-cell"]


def closes(line: str, block: Block) -> bool:
    match = FENCE.match(line)
    return bool(match) and match["fence"][0] == block.fence[0] \
        and len(match["fence"]) >= len(block.fence) and not match["info"].strip()


def read_page(path: Path) -> Page:
    return parse(path.read_text(encoding="utf-8"), path)


def parse(text: str, path: Path = Path("<text>")) -> Page:
    lines = text.splitlines()
    prose: list[tuple[int, str]] = []
    blocks: list[Block] = []
    stack: list[Block] = []
    i = 0
    if lines and lines[0].strip() == "---":  # front matter
        i = 1
        while i < len(lines) and lines[i].strip() != "---":
            i += 1
        i += 1
    in_comment = False
    while i < len(lines):
        line, number = lines[i], i + 1
        i += 1
        top = stack[-1] if stack else None
        if top is not None and closes(line, top):
            stack.pop()
            continue
        if top is not None and top.is_code:
            top.body.append((number, line))
            continue
        # prose context: the document or a prose directive
        if in_comment:
            if "-->" in line:
                in_comment = False
                line = line.split("-->", 1)[1]
            else:
                continue
        line = re.sub(r"<!--.*?-->", "", line)
        if "<!--" in line:
            line, in_comment = line.split("<!--", 1)[0], True
        match = FENCE.match(line)
        if match:
            info = match["info"].strip()
            directive = DIRECTIVE.match(info)
            block = Block(name=directive["name"] if directive else "",
                          argument=directive["argument"].strip() if directive else info,
                          line=number, fence=match["fence"])
            if directive:
                i = read_options(lines, i, block, prose)
            blocks.append(block)
            stack.append(block)
            continue
        if top is not None:
            top.body.append((number, line))
        stripped = line.strip()
        if re.fullmatch(r"\(.*\)=", stripped) or stripped.startswith("+++"):
            continue
        prose.append((number, line))
    return Page(path, prose, blocks)


def read_options(lines: list[str], i: int, block: Block, prose: list) -> int:
    """Read a directive's options starting at index ``i``; return the index after them."""
    if i < len(lines) and lines[i].strip() == "---":
        start = i + 1
        end = start
        while end < len(lines) and lines[end].strip() != "---":
            end += 1
        header = lines[start:end]
        try:
            block.options = yaml.safe_load("\n".join(header)) or {}
        except yaml.YAMLError as error:
            block.option_error = str(error)
        prose.extend(option_prose(header, start + 1))
        return end + 1
    while i < len(lines):
        match = OPTION.match(lines[i])
        if not match:
            break
        block.options[match["key"]] = match["value"].strip()
        i += 1
    return i


def option_prose(header: list[str], first_line: int) -> list[tuple[int, str]]:
    """The caption and alt text inside a YAML option block, with their lines."""
    found, indent = [], None
    for offset, line in enumerate(header):
        key = re.match(rf"^(\s*)({'|'.join(PROSE_KEYS)}):\s*(.*)$", line)
        if key:
            indent = len(key[1])
            found.append((first_line + offset, key[3]))
        elif indent is not None and line.strip() and len(line) - len(line.lstrip()) > indent:
            found.append((first_line + offset, line))
        else:
            indent = None
    return found


# --- inline text --------------------------------------------------------------

CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
ROLE = re.compile(r"\{(?P<name>[\w:.-]*)\}(?P<tick>`+)(?P<content>.+?)(?P=tick)")


def without_code(text: str) -> str:
    """A prose line without code spans and roles (whose content is code-like:
    glue names, labels, citation keys), link targets and URLs."""
    text = ROLE.sub(" ", text)
    text = CODE_SPAN.sub(" ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # [text](target)
    text = re.sub(r"<[a-z]+://[^>]*>", " ", text)  # <https://...>
    text = re.sub(r"\b[a-z]+://\S+", " ", text)  # bare URL (linkify)
    return text


# --- Python in code cells ----------------------------------------------------


def python_tree(source: str) -> ast.Module:
    """Parse a code cell, IPython magics included (turned into Python first)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return ast.parse(TransformerManager().transform_cell(source))


def call_name(func: ast.expr) -> str:
    """The name a call is made through: ``f`` for ``f(...)`` and ``obj.f(...)``."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""
