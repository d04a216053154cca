from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

import browser_pages as bp
from book_pages import BUILD, build, ensure_executed
# Prints the page weights measured by test_browser.py at the end of a run.
from browser_pages import pytest_terminal_summary  # noqa: F401
from tools.pages import notebook_pages


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A test skipped for want of a browser or of Pyodide is reported as
    skipped here, so that pytest's summary folds all of them into one line
    for each thing missing, whichever file their tests are in."""
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2].removeprefix("Skipped: ")
        if reason in bp.MISSING:
            report.longrepr = (__file__, None, reason)
    return report


def pytest_addoption(parser):
    parser.addoption(
        "--update-references", action="store_true",
        help="store each page's normalised outputs in tests/references/ "
             "instead of comparing with them (after an intended change)")


@pytest.fixture
def update_references(request) -> bool:
    return request.config.getoption("--update-references")


@pytest.fixture(scope="session")
def cache() -> Path:
    """The execution cache, holding every page of the book."""
    return ensure_executed(notebook_pages())


@dataclass
class Build:
    returncode: int
    log: str
    html: Path


@pytest.fixture(scope="session")
def built_book(cache) -> Build:
    """The book built by README command (1). Every test that reads the HTML
    uses this one build; with the cache full it executes nothing."""
    with FileLock(str(BUILD / ".build.lock")):
        returncode, log = build()
    return Build(returncode, log, BUILD / "html")


@pytest.fixture(scope="session")
def html(built_book) -> Path:
    """The built book's HTML folder (tests/test_browser.py, test_live.py)."""
    assert (built_book.html / "index.html").exists(), (
        "the book did not build (see test_build.py):\n"
        + "\n".join(built_book.log.splitlines()[-30:]))
    return built_book.html


@pytest.fixture(scope="session")
def server(html):
    """The built book served on 127.0.0.1."""
    with bp.BookServer(html) as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    """Chromium (bp.find_browser), driven by Playwright. Without one the
    browser tests are skipped, and fail with CI=true."""
    from playwright.sync_api import sync_playwright

    path, why = bp.find_browser()
    if path is None:
        bp.missing(f"browser tests need Chromium, {why}: {bp.GET_A_BROWSER}")
    with sync_playwright() as playwright:
        browser = bp.launch(playwright)
        yield browser
        browser.close()
