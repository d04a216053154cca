import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from book_pages import build_book  # noqa: E402
# Prints the page weights measured by test_browser.py at the end of a run.
from browser_pages import pytest_terminal_summary  # noqa: E402,F401


def pytest_addoption(parser):
    parser.addoption(
        "--update-references", action="store_true",
        help="store each executed page's normalised outputs in tests/references/ "
             "instead of comparing with them (after an intentional change)",
    )


@pytest.fixture
def update_references(request) -> bool:
    return request.config.getoption("--update-references")


@dataclass
class Build:
    returncode: int
    log: str
    html: Path


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Build:
    """The book built as README command (1) builds it, with -W -n --keep-going.

    Every test that reads the HTML uses this one build. pytest-xdist workers
    share it through a lock; the execution cache makes a second build cheap.
    """
    from book_pages import BUILD

    BUILD.mkdir(exist_ok=True)
    with FileLock(str(BUILD / ".tests.lock")):
        returncode, log = build_book()
    return Build(returncode, log, BUILD / "html")
