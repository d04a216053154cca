"""The build command executes pages in parallel, once, and only when their code changed.

README command (1), ``python tools/build.py``, executes the pages whose code
is not in the execution cache before Sphinx reads them (tools/page_execution.py,
_ext/parallel_execution.py), in kernels forked from a template that has
already imported torch (tools/warm_kernel.py). These tests check, on a small
book in a temporary folder (this repository's configuration, linked, and
three tiny pages: ``engine.md``, ``user.md`` which runs the engine's code
and names it under ``depends_on``, and ``other.md``):

- after the parallel step Sphinx executes no page (MyST-NB's own log says
  which pages it executes), so the step computes exactly MyST-NB's cache key;
- changing one page's code re-executes that page only, changing prose
  re-executes none, changing code another page runs re-executes both, and a
  rebuild with no change executes nothing;
- a plain ``jupyter-book build`` still executes the pages itself, and what
  it caches is what the page tests and the build command look up;
- a page that fails is not cached, fails its test with the cell and the
  error, and is reported by MyST-NB in the build as before;
- a warm kernel is a fresh kernel: a probe page sees the same state in it
  as in a kernel started the usual way, except for the preloaded modules;
  it is interrupted like one and leaves no process behind;
- the page tests look up exactly what the build of the real book cached.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
from jupyter_cache import get_cache

from book_pages import (
    KERNEL_ENV, PAGE_FRONT_MATTER, ROOT, build_book, link_configuration, notebook_pages, strip_ansi,
)
from tools.page_execution import Book, executed_page, run_coroutine
from tools.warm_kernel import WarmKernels

FRONT = PAGE_FRONT_MATTER
ENGINE = FRONT.format(extra="") + """
# Engine

Some prose.

```{code-cell} ipython3
:tags: [engine]

def double(x):
    return 2 * x
```
"""
USER = FRONT.format(extra="depends_on:\n  - engine.md\n") + """
# User

```{code-cell} ipython3
import re
from pathlib import Path

engine = re.search(r":tags: \\[engine\\]\\n\\n(.*?)`{3}", Path("engine.md").read_text(), re.S)
namespace = {}
exec(engine.group(1), namespace)
print(namespace["double"](21))
```
"""
OTHER = FRONT.format(extra="") + """
# Other

Prose of the other page.

```{code-cell} ipython3
print(sum(range(10)))
```
"""
PAGES = {"engine.md": ENGINE, "user.md": USER, "other.md": OTHER}


def small_book(folder: Path, pages: dict[str, str] = PAGES) -> Path:
    """A book in ``folder``: this repository's configuration and ``pages`` in book/."""
    link_configuration(folder)
    (folder / "book" / "intro.md").write_text("# A small book\n\nNo code here.\n", encoding="utf-8")
    for name, text in pages.items():
        (folder / "book" / name).write_text(text, encoding="utf-8")
    (folder / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n"
        + "".join(f"  - file: book/{Path(name).stem}\n" for name in pages), encoding="utf-8")
    return folder


def executions(log: str) -> tuple[list[str], list[str]]:
    """The pages executed by the parallel step, and by MyST-NB while Sphinx read them."""
    parallel = re.findall(r"\[parallel execution\] (?:executed|failed) (\S+\.md) in", log)
    sphinx = re.findall(r"/([^/\s]+\.md): Executing notebook", log)
    return sorted(parallel), sorted(sphinx)


def build(book: Path) -> tuple[list[str], list[str], str]:
    code, log = build_book(book)
    assert code == 0, log[-4000:]
    return (*executions(log), log)


def cache_records(book: Path) -> dict[str, tuple]:
    cache = get_cache(str(book / "_build" / ".jupyter_cache"))
    return {record.hashkey: (Path(record.uri).name, record.created)
            for record in cache.list_cache_records()}


def edit(book: Path, name: str, old: str, new: str) -> None:
    page = book / "book" / name
    text = page.read_text(encoding="utf-8")
    assert old in text
    page.write_text(text.replace(old, new), encoding="utf-8")


def test_pages_execute_in_parallel_once_and_only_when_their_code_changes(tmp_path):
    book = small_book(tmp_path)

    parallel, sphinx, log = build(book)
    assert parallel == ["engine.md", "other.md", "user.md"], log[-4000:]
    assert sphinx == [], f"Sphinx executed {sphinx} after the parallel step"
    assert len(re.findall(r"\.md: Using cached notebook", log)) == 3
    records = cache_records(book)
    assert len(records) == 3

    parallel, sphinx, log = build(book)
    assert (parallel, sphinx) == ([], []), "a rebuild with no change executed pages"
    assert cache_records(book) == records

    edit(book, "other.md", "Prose of the other page.", "Changed prose.")
    parallel, sphinx, log = build(book)
    assert (parallel, sphinx) == ([], []), "a change of prose executed pages"
    assert "other.md: Using cached notebook" in log, "the edited page was not read again"

    edit(book, "other.md", "sum(range(10))", "sum(range(11))")
    parallel, sphinx, log = build(book)
    assert (parallel, sphinx) == (["other.md"], []), "a change of one page's code"

    edit(book, "engine.md", "Some prose.", "Other prose.")
    parallel, sphinx, log = build(book)
    assert (parallel, sphinx) == ([], []), "a change of prose in a page others depend on"
    assert "user.md: Using cached notebook" in log, "the dependent page was not read again"

    edit(book, "engine.md", "2 * x", "x + x")
    parallel, sphinx, log = build(book)
    assert (parallel, sphinx) == (["engine.md", "user.md"], []), "a change of shared code"
    # The page tests find the new execution in the cache.
    result = executed_page(book / "book" / "user.md", KERNEL_ENV)
    assert result.status == "cached" and result.notebook.cells[-1].outputs[0].text == "42\n"


def test_a_plain_jupyter_book_build_agrees_with_the_build_command_and_the_tests(tmp_path):
    book = small_book(tmp_path)
    process = subprocess.run(["jupyter-book", "build", str(book), "-W", "-n", "--keep-going"],
                             cwd=book, capture_output=True, text=True)
    log = strip_ansi(process.stdout + process.stderr)
    assert process.returncode == 0, log[-4000:]
    assert executions(log) == ([], ["engine.md", "other.md", "user.md"]), \
        "plain jupyter-book build did not execute the pages itself"
    assert "[parallel execution]" not in log

    # The key the tests compute (without Sphinx) is MyST-NB's ...
    settings = Book.load(book)
    cache = get_cache(str(settings.cache_path))
    for name in PAGES:
        key = cache.create_hashed_notebook(settings.job(book / "book" / name).notebook)[1]
        assert key in cache_records(book), f"the tests' key of {name} is not the one MyST-NB cached"
    # ... and so is the build command's: re-reading every page executes nothing.
    parallel, sphinx, log = build_all(book)
    assert (parallel, sphinx) == ([], []), log[-4000:]
    assert len(re.findall(r"\.md: Using cached notebook", log)) == 3


def build_all(book: Path) -> tuple[list[str], list[str], str]:
    code, log = build_book(book, "--all")
    assert code == 0, log[-4000:]
    return (*executions(log), log)


FAILING = FRONT.format(extra="") + """
# Failing

```{code-cell} ipython3
numerator = 1
```

```{code-cell} ipython3
numerator / 0
```
"""


def test_a_failing_page_is_not_cached_and_fails_with_its_cell_and_error(tmp_path):
    book = small_book(tmp_path, {"failing.md": FAILING})
    page = book / "book" / "failing.md"
    for _ in range(2):  # the second time it is executed again: failures are not cached
        result = executed_page(page, KERNEL_ENV)
        assert result.status == "failed"
        message = strip_ansi(str(result.exec_error))
        assert "numerator / 0" in message and "ZeroDivisionError" in message, message
        assert [cell.get("outputs", []) for cell in result.notebook.cells
                if cell.cell_type == "code"][1][0]["ename"] == "ZeroDivisionError"
        assert cache_records(book) == {}
    code, log = build_book(book)
    assert code != 0
    assert executions(log) == (["failing.md"], ["failing.md"]), \
        "MyST-NB did not execute the failing page again to report it"
    assert re.search(r"failing\.md: WARNING: Executing notebook failed", log), log[-4000:]


# --- Warm kernels ---------------------------------------------------------------------

PROBE = [
    """\
import os, signal, sys
from ipykernel.kernelapp import IPKernelApp
seen = {
    "leaked": "leak_from_an_earlier_page" in dir(),
    "names": sorted(name for name in dir() if not name.startswith("_")),
    "preloaded": "torch" in sys.modules,
    # (without the kernel's connection file, a new one for each kernel)
    "argv": [a for a in sys.argv if not a.endswith(".json")],
    "orig_argv": [a for a in sys.orig_argv if not a.endswith(".json")],
    "cwd": os.getcwd(), "path": sys.path,
    "env": dict(os.environ), "main": sys.modules["__main__"].__dict__ is globals(),
    "own session": os.getsid(0) == os.getpid() == os.getpgid(0),
    "signals": {name: str(signal.getsignal(getattr(signal, name)))
                for name in ("SIGINT", "SIGTERM", "SIGCHLD", "SIGPIPE", "SIGHUP", "SIGXFSZ")},
    "parent_handle": IPKernelApp.instance().parent_handle,
    "hash": hash("a string"),
    "stdio": [os.isatty(fd) for fd in (0, 1, 2)],
}""",
    """\
import random
import matplotlib.pyplot as plt
import numpy
import torch
seen.update(backend=plt.get_backend(), threads=torch.get_num_threads(),
            torch_seed=torch.initial_seed(), numpy_draw=numpy.random.random(),
            random_draw=random.random(), interactive=plt.isinteractive())""",
    "os.system('echo from a subprocess'); os.write(1, b'written to fd 1\\n')",
    "import json\nprint(json.dumps(seen))",
    "leak_from_an_earlier_page = True",
]


def probe_notebook() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in PROBE]
    return notebook


async def run(notebook, folder: Path, env: dict, manager_class=None, **options):
    from nbclient import NotebookClient

    if manager_class is not None:
        options["kernel_manager_class"] = manager_class
    client = NotebookClient(notebook, resources={"metadata": {"path": str(folder)}}, **options)
    await client.async_execute(env=env)
    return notebook


def seen(notebook) -> tuple[dict, list]:
    outputs = notebook.cells[3].outputs
    streams = [dict(o) for o in notebook.cells[2].outputs]
    return json.loads(outputs[0].text), streams


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if re.search(rf"^PPid:\s+{pid}$", status, re.MULTILINE):
                found.append(int(entry.name))
    return found


def test_a_warm_kernel_is_a_fresh_kernel(tmp_path):
    env = {**os.environ, **KERNEL_ENV}
    cold = run_coroutine(lambda: run(probe_notebook(), tmp_path, env))
    with WarmKernels(env) as warm:
        first = run_coroutine(lambda: run(probe_notebook(), tmp_path, env, warm.manager_class))
        second = run_coroutine(lambda: run(probe_notebook(), tmp_path, env, warm.manager_class))
        assert children(warm.process.pid) == [], "a kernel outlived its page"
    (cold_seen, cold_streams), (warm_seen, warm_streams), (other_seen, _) = map(
        seen, (cold, first, second))

    assert not cold_seen["preloaded"] and warm_seen["preloaded"], "the kernel was not warm"
    assert not warm_seen["leaked"] and not other_seen["leaked"]
    # Generators seeded from the OS on import are seeded anew in each warm kernel.
    for key in ("torch_seed", "numpy_draw", "random_draw"):
        assert warm_seen[key] != other_seen[key], key
    for observation in (cold_seen, warm_seen, other_seen):
        for key in ("preloaded", "torch_seed", "numpy_draw", "random_draw"):
            observation.pop(key)
    assert warm_seen == cold_seen
    # Output written to file descriptor 1 (a subprocess's) goes where a cold kernel's goes.
    assert warm_streams == cold_streams


def test_a_warm_kernel_is_interrupted_and_stopped_like_a_cold_one(tmp_path):
    from nbclient.exceptions import CellTimeoutError

    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    notebook.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(30)"),
                      nbformat.v4.new_code_cell("print('still alive')")]
    env = {**os.environ, **KERNEL_ENV}
    with WarmKernels(env) as warm:
        # On a timeout nbclient interrupts the kernel (SIGINT through the proxy) ...
        run_coroutine(lambda: run(notebook, tmp_path, env, warm.manager_class, timeout=5,
                        interrupt_on_timeout=True, allow_errors=True))
        assert notebook.cells[0].outputs[-1].ename == "KeyboardInterrupt"
        assert notebook.cells[1].outputs[0].text == "still alive\n"
        # ... or gives up on it and shuts it down.
        with pytest.raises(CellTimeoutError):
            run_coroutine(lambda: run(notebook, tmp_path, env, warm.manager_class, timeout=5))
        assert children(warm.process.pid) == [], "a kernel outlived its page"
    assert warm.process.poll() is not None


def test_a_kernel_started_with_another_environment_is_cold(tmp_path):
    """The template refuses what it cannot reproduce (here PYTHONHASHSEED, which a
    forked kernel would inherit from the template): such kernels start cold."""
    env = {**os.environ, **KERNEL_ENV}
    with WarmKernels(env) as warm:
        other = run_coroutine(lambda: run(probe_notebook(), tmp_path, {**env, "PYTHONHASHSEED": "1"},
                                warm.manager_class))
        same = run_coroutine(lambda: run(probe_notebook(), tmp_path, env, warm.manager_class))
    other_seen, same_seen = seen(other)[0], seen(same)[0]
    assert not other_seen["preloaded"] and same_seen["preloaded"]
    assert other_seen["hash"] != same_seen["hash"]


# --- The real book ---------------------------------------------------------------------


def test_the_page_tests_find_what_the_build_cached(built_book):
    """After README command (1), the page tests execute nothing: for every page
    the key they compute is one the build cached."""
    assert built_book.returncode == 0, built_book.log[-3000:]
    settings = Book.load(ROOT)
    cache = get_cache(str(settings.cache_path))
    keys = {record.hashkey for record in cache.list_cache_records()}
    missing = [page.name for page in notebook_pages()
               if cache.create_hashed_notebook(settings.job(page).notebook)[1] not in keys]
    assert missing == [], f"the page tests would execute {missing} again"
