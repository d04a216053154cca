"""The book builds to HTML with zero warnings (README command 1), and every
page of book/ is in the table of contents."""

from pathlib import Path

from book_pages import BUILD, ROOT, strip_ansi, warnings
from tools.pages import notebook_pages, toc_files

REPORTS = BUILD / "html" / "reports"


def toc_problems(root: Path = ROOT) -> list[str]:
    """Pages that _toc.yml leaves out, and entries without a page."""
    on_disk = set((root / "book").rglob("*.md"))
    listed = set(toc_files(root))
    return ([f"{shown(p, root)} is not listed in _toc.yml"
             for p in sorted(on_disk - listed)]
            + [f"_toc.yml lists {shown(p, root)}, which does not exist"
               for p in sorted(listed - on_disk)])


def shown(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def test_every_page_is_in_the_table_of_contents():
    problems = toc_problems()
    assert not problems, "\n".join(problems)
    assert len(notebook_pages()) > 0


def test_book_builds_without_warnings(built_book):
    found = warnings(built_book.log)
    reports = sorted(REPORTS.glob("**/*.log")) if REPORTS.exists() else []
    details = "\n\n".join(f"--- {r.relative_to(BUILD)} ---\n"
                          f"{strip_ansi(r.read_text())}" for r in reports)
    assert built_book.returncode == 0 and not found, (
        f"jupyter-book build failed (exit {built_book.returncode}) with "
        f"{len(found)} warnings:\n" + "\n".join(found)
        + ("\n\nExecution reports:\n" + details if details else "")
        + "\n\nLast lines of the build log:\n"
        + "\n".join(built_book.log.splitlines()[-30:]))
    assert (built_book.html / "index.html").exists()


def test_the_build_executes_nothing_the_cache_holds(built_book):
    """The tests' executions are the build's: rebuilding runs no page."""
    assert "Executing notebook" not in built_book.log  # MyST-NB's
    assert "[execution]" not in built_book.log  # tools/book.py's
