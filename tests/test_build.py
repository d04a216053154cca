"""The book builds to HTML with zero warnings (README command 1, with -W -n)."""

import re
from pathlib import Path


from book_pages import BUILD, ROOT, notebook_pages, strip_ansi
from tools.learner_notebooks import toc_entries

REPORTS = BUILD / "html" / "reports"


def toc_files(root: Path = ROOT) -> set[str]:
    return set(toc_entries(root))


def toc_problems(root: Path = ROOT) -> list[str]:
    """Pages that _toc.yml leaves out, and _toc.yml entries without a page, by name."""
    pages = {str(p.relative_to(root).with_suffix("")) for p in (root / "book").rglob("*.md")}
    listed = toc_files(root)
    return ([f"{page}.md is not listed in _toc.yml" for page in sorted(pages - listed)]
            + [f"_toc.yml lists {entry}, but {entry}.md does not exist"
               for entry in sorted(listed - pages)])


def test_every_page_is_in_the_table_of_contents():
    problems = toc_problems()
    assert not problems, "\n".join(problems)
    assert len(notebook_pages()) > 0


def test_book_builds_without_warnings(built_book):
    warnings = [line for line in built_book.log.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL):", line)]
    reports = sorted(REPORTS.glob("**/*.log")) if REPORTS.exists() else []
    details = "\n\n".join(f"--- {r.relative_to(BUILD)} ---\n{strip_ansi(r.read_text())}" for r in reports)
    assert built_book.returncode == 0 and not warnings, (
        f"jupyter-book build failed (exit {built_book.returncode}) with {len(warnings)} warnings:\n"
        + "\n".join(warnings) + ("\n\nExecution reports:\n" + details if details else "")
        + "\n\nLast lines of the build log:\n" + "\n".join(built_book.log.splitlines()[-30:])
    )
    assert (built_book.html / "index.html").exists()
