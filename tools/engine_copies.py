"""Copies of code cells that let a page run on its own.

Part I's engines are written on the pages that teach them. A later page that
uses them carries a hidden copy: a code cell whose first line is

    # Copied from <page>, cells tagged <tag>.

followed by the code of the cells of ``<page>`` (in the same folder) tagged
``<tag>``, joined by two blank lines. ``python -m tools.engine_copies``
rewrites every copy from its original after an engine changes; with
``--check`` it writes nothing, lists the copies that differ and exits 1.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from tools.pages import ROOT, read_notebook

MARKER = re.compile(r"# Copied from (?P<page>\S+), cells tagged (?P<tag>\S+)\.$")


def tagged_source(page: Path, tag: str) -> str:
    """The code of ``page``'s cells tagged ``tag``, joined."""
    return "\n\n\n".join(
        cell.source.strip("\n") for cell in read_notebook(page).cells
        if cell.cell_type == "code" and tag in cell.metadata.get("tags", []))


def copies(page: Path) -> list[tuple[Path, str, str]]:
    """(original page, tag, copied code) of each copy on ``page``."""
    found = []
    for cell in read_notebook(page).cells:
        first, _, rest = cell.source.partition("\n")
        match = MARKER.match(first)
        if cell.cell_type == "code" and match:
            found.append((page.parent / match["page"], match["tag"], rest))
    return found


def stale(page: Path) -> list[str]:
    """The copies on ``page`` that differ from their originals."""
    shown = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page
    return [f"{shown}: its copy of {original.name} "
            f"(cells tagged {tag}) differs from the original"
            for original, tag, code in copies(page)
            if code.strip() != tagged_source(original, tag).strip()]


def rewrite(page: Path) -> None:
    """Replace the body of every copy on ``page`` by its original's code."""
    lines = page.read_text(encoding="utf-8").split("\n")
    out, i = [], 0
    while i < len(lines):
        out.append(lines[i])
        match = MARKER.match(lines[i])
        i += 1
        if match:
            original = page.parent / match["page"]
            out.extend(tagged_source(original, match["tag"]).split("\n"))
            while not lines[i].startswith("```"):
                i += 1
    page.write_text("\n".join(out), encoding="utf-8")


def pages_with_copies() -> list[Path]:
    return [page for page in sorted((ROOT / "book").glob("**/*.md"))
            if "# Copied from " in page.read_text(encoding="utf-8")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; list the copies that differ")
    args = parser.parse_args(argv)
    problems = [problem for page in pages_with_copies()
                for problem in stale(page)]
    if args.check:
        print("\n".join(problems) or "every copy equals its original")
        return 1 if problems else 0
    for page in pages_with_copies():
        if stale(page):
            rewrite(page)
            print(f"rewrote the copies on {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
