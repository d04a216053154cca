"""Read the MyST Markdown source of a page: its prose, its directives, its
code cells, with line numbers.

The checks on what a page *says* (numbers in the prose, glue names,
exercise structure) need the source with its lines. The page is parsed by
myst-parser's markdown-it parser (``tools.pages.tokens``): a directive is a
fence token whose info is ``{name} argument``. Code directives
(``{code-cell}``, ``{code-block}`` ...) and plain fences hold code; the
content of every other directive (``{exercise}``, ``{note}`` ...) is parsed
again, after its ``:option:`` lines or ``---`` YAML block, as prose. The
front matter, ``(label)=`` targets, ``+++`` breaks and HTML comments are not
prose; the ``caption`` and ``alt`` text of a code cell's figure options is.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tools.pages import tokens

DIRECTIVE = re.compile(r"^\{(?P<name>[^}\s]+)\}\s*(?P<argument>.*)$")
OPTION = re.compile(r"^\s*:(?P<key>[\w-]+):\s*(?P<value>.*)$")
# Directives whose body is code or data, never prose.
CODE_DIRECTIVES = {"code-cell", "code", "code-block", "sourcecode",
                   "literalinclude", "raw", "eval-rst", "bibliography",
                   "nb-exec-table"}
# Keys of a code cell's YAML options whose text the reader sees.
PROSE_KEYS = ("caption", "alt")
NOT_PROSE = {"front_matter", "myst_target", "myst_block_break", "html_block",
             "myst_line_comment"}


@dataclass
class Block:
    """A fenced block: a directive (``name`` set) or a plain code fence
    (``name`` '')."""

    name: str
    argument: str
    line: int  # 1-based line of the opening fence
    options: dict = field(default_factory=dict)
    body: list[tuple[int, str]] = field(default_factory=list)  # after options
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
    blocks: list[Block]  # every fenced block, nested ones too, in order

    @property
    def code_cells(self) -> list[Block]:
        return [b for b in self.blocks if b.name == "code-cell"]


def read_page(path: Path) -> Page:
    return parse(path.read_text(encoding="utf-8"), path)


def parse(text: str, path: Path = Path("<text>")) -> Page:
    page = Page(path, [], [])
    read_into(page, text.splitlines(), 1)
    page.prose.sort()
    return page


def read_into(page: Page, lines: list[str], first: int) -> None:
    """Add the prose and blocks of ``lines`` (line ``first`` onwards)."""
    covered = set()
    for token in tokens("\n".join(lines)):
        if token.map is None or token.level != 0:
            continue
        span = range(token.map[0], token.map[1])
        if token.type in NOT_PROSE:
            covered.update(span)
        elif token.type in ("fence", "colon_fence"):
            covered.update(span)
            page.blocks.append(block(page, token, lines, first))
    page.prose.extend((first + i, line) for i, line in enumerate(lines)
                      if i not in covered and line.strip())


def block(page: Page, token, lines: list[str], first: int) -> Block:
    directive = DIRECTIVE.match(token.info.strip())
    start = token.map[0] + 1  # the line after the opening fence
    end = token.map[1] - 1 if token.map[1] - 1 > token.map[0] and \
        lines[token.map[1] - 1].strip().startswith(token.markup) else token.map[1]
    body = lines[start:end]
    if not directive:
        return Block("", token.info.strip(), first + token.map[0],
                     body=[(first + start + i, t) for i, t in enumerate(body)])
    found = Block(directive["name"], directive["argument"].strip(),
                  first + token.map[0])
    skip = read_options(body, found, page.prose, first + start)
    found.body = [(first + start + i, t) for i, t in enumerate(body)][skip:]
    if not found.is_code:
        position = len(page.blocks)
        read_into(page, body[skip:], first + start + skip)
        # nested blocks come after their parent, in source order
        page.blocks[position:] = sorted(page.blocks[position:],
                                        key=lambda b: b.line)
    return found


def read_options(body: list[str], found: Block, prose: list,
                 first: int) -> int:
    """Read a directive's options; return how many lines they take."""
    if body and body[0].strip() == "---":
        end = next((i for i in range(1, len(body)) if body[i].strip() == "---"),
                   len(body))
        header = body[1:end]
        try:
            found.options = yaml.safe_load("\n".join(header)) or {}
        except yaml.YAMLError as error:
            found.option_error = str(error)
        prose.extend(option_prose(header, first + 1))
        return end + 1
    count = 0
    for line in body:
        match = OPTION.match(line)
        if not match:
            break
        found.options[match["key"]] = match["value"].strip()
        count += 1
    return count


def option_prose(header: list[str], first_line: int) -> list[tuple[int, str]]:
    """The caption and alt text inside a YAML option block, with lines."""
    found, indent = [], None
    for offset, line in enumerate(header):
        key = re.match(rf"^(\s*)({'|'.join(PROSE_KEYS)}):\s*(.*)$", line)
        if key:
            indent = len(key[1])
            found.append((first_line + offset, key[3]))
        elif indent is not None and line.strip() and \
                len(line) - len(line.lstrip()) > indent:
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
