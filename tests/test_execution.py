"""Pages are executed once, in parallel, and again only when their code or
the installed packages change (tools/execution.py, tools/book.py).

A small book (this repository's configuration, two tiny pages) is built
with README command (1) four times: clean, unchanged, with one page's code
edited, and with one more package installed (a stand-in distribution on
PYTHONPATH, as a changed pin would be). MyST-NB logs "Executing notebook"
for every page it executes itself; tools/book.py logs how many it executed
in parallel.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from unittest import mock

import nbformat
import pytest
from jupyter_cache.executors.utils import single_nb_execution

from book_pages import (BUILD_COMMAND, PAGE_FRONT_MATTER, small_book,
                        strip_ansi, warnings)
from tools import execution

PAGE = PAGE_FRONT_MATTER + """
(LABEL)=
# A page

```{code-cell} ipython3
print(6 * 7)
```
"""


def build(book: Path, env: dict | None = None) -> str:
    process = subprocess.run([*BUILD_COMMAND, "."], cwd=book, text=True,
                             capture_output=True, env={**os.environ, **(env or {})})
    log = strip_ansi(process.stdout + process.stderr)
    assert process.returncode == 0 and not warnings(log), log[-3000:]
    return log


def executed(log: str) -> tuple[int, int]:
    """(pages executed in parallel, pages MyST-NB executed itself)."""
    parallel = re.search(r"\[execution\] (\d+) page", log)
    return (int(parallel.group(1)) if parallel else 0,
            log.count("Executing notebook using"))


def fake_package(folder: Path, version: str) -> Path:
    info = folder / f"book_test_stand_in-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: book-test-stand-in\nVersion: {version}\n")
    return folder


def test_pages_execute_once_in_parallel_and_again_when_needed(tmp_path):
    book = small_book(tmp_path / "book", {
        "one.md": PAGE.replace("LABEL", "one"),
        "two.md": PAGE.replace("LABEL", "two")})
    assert executed(build(book)) == (2, 0)
    assert executed(build(book)) == (0, 0)
    page = book / "book" / "one.md"
    page.write_text(page.read_text().replace("6 * 7", "7 * 6"))
    assert executed(build(book)) == (1, 0)
    site = fake_package(tmp_path / "site", "1.0")
    log = build(book, {"PYTHONPATH": str(site)})
    assert executed(log) == (2, 0), log
    caches = list((book / "_build" / ".jupyter_cache").iterdir())
    assert len(caches) == 1, "the cache of the old environment is removed"


def test_the_key_follows_every_installed_version(monkeypatch):
    key = execution.environment_key()
    assert execution.environment_key() == key

    class Stand_in:
        metadata = {"Name": "book-test-stand-in"}
        version = "1.0"

    original = list(execution.importlib.metadata.distributions())
    monkeypatch.setattr(execution.importlib.metadata, "distributions",
                        lambda: [*original, Stand_in()])
    with_package = execution.environment_key()
    Stand_in.version = "1.1"
    assert len({key, with_package, execution.environment_key()}) == 3


@pytest.mark.parametrize("name", ["OMP_NUM_THREADS", "PYTHONHASHSEED"])
def test_kernels_get_the_books_environment(tmp_path, name):
    assert execution.kernel_environment(tmp_path)[name] == \
        execution.KERNEL_ENV[name]


def test_kernels_drop_only_the_shutdown_race_of_ipykernel(tmp_path):
    code = """\
import logging, zmq
seen = []
handler = logging.Handler()
handler.emit = lambda record: seen.append(record.exc_info[0].__name__)
logger = logging.getLogger("tornado.general")
logger.addHandler(handler)
for error in [zmq.ZMQError(zmq.ENOTSOCK), zmq.ZMQError(zmq.EAGAIN),
              ValueError("a real error")]:
    try:
        raise error
    except Exception:
        logger.error("Uncaught exception in ZMQStream callback",
                     exc_info=True)
print(seen)
"""
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(code)])
    env = {**os.environ, **execution.kernel_environment(tmp_path)}
    with mock.patch.dict(os.environ, env):
        result = single_nb_execution(notebook, cwd=str(tmp_path),
                                     timeout=60, allow_errors=False)
    assert result.err is None, result.exc_string
    assert notebook.cells[0].outputs[0].text == \
        "['ZMQError', 'ValueError']\n"
