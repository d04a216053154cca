"""The book builds to HTML with zero warnings (README command 1)."""

import subprocess

import yaml

from book_pages import BOOK, ROOT, notebook_pages, strip_ansi

BUILD = ROOT / "_build"
REPORTS = BUILD / "html" / "reports"


def toc_files() -> set[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {toc["root"]}

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.add(entry["file"])
            walk(entry.get("sections", []) + entry.get("chapters", []))

    walk(toc.get("parts", []) + toc.get("chapters", []))
    return files


def test_every_page_is_in_the_table_of_contents():
    pages = {str(p.relative_to(ROOT).with_suffix("")) for p in BOOK.rglob("*.md")}
    listed = toc_files()
    assert pages - listed == set(), "pages missing from _toc.yml"
    assert listed - pages == set(), "_toc.yml lists files that do not exist"
    assert len(notebook_pages()) > 0


def test_book_builds_without_warnings():
    process = subprocess.run(
        ["jupyter-book", "build", str(ROOT), "-W", "-n", "--keep-going"],
        cwd=ROOT, capture_output=True, text=True,
    )
    log = strip_ansi(process.stdout + process.stderr)
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    reports = sorted(REPORTS.glob("**/*.log")) if REPORTS.exists() else []
    details = "\n\n".join(f"--- {r.relative_to(BUILD)} ---\n{strip_ansi(r.read_text())}" for r in reports)
    assert process.returncode == 0 and not warnings, (
        f"jupyter-book build failed (exit {process.returncode}) with {len(warnings)} warnings:\n"
        + "\n".join(warnings) + ("\n\nExecution reports:\n" + details if details else "")
        + f"\n\nLast lines of the build log:\n" + "\n".join(log.splitlines()[-30:])
    )
