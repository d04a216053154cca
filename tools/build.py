"""Build the book: execute the pages that need it in parallel, then render.

    python tools/build.py [SOURCE] [--workers N] [jupyter-book build options]

is ``jupyter-book build SOURCE`` (SOURCE defaults to this repository; the
options are jupyter-book's: -W, -n, --keep-going, --all, --path-output ...)
with one addition: before Sphinx reads the pages, those whose code is not
in the execution cache are executed N at a time (default: one per core)
in fresh kernels, into the cache MyST-NB reads (_ext/parallel_execution.py,
tools/page_execution.py). Sphinx then executes nothing itself. Without
changes to any page's code, nothing is executed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKERS_VARIABLE = "BOOK_EXECUTION_WORKERS"  # read by _ext/parallel_execution.py


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def main(argv: list[str]) -> None:
    workers = cores()
    if "--workers" in argv:
        at = argv.index("--workers")
        workers = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2:]
    if workers < 1:
        sys.exit("--workers must be at least 1")
    if not argv or argv[0].startswith("-"):
        argv = [str(ROOT), *argv]
    # The extension imports tools.page_execution from this repository.
    sys.path.insert(0, str(ROOT))
    os.environ[WORKERS_VARIABLE] = str(workers)
    from jupyter_book.cli.main import main as jupyter_book

    jupyter_book(["build", *argv], prog_name="tools/build.py")


if __name__ == "__main__":
    main(sys.argv[1:])
