"""Execute pages in parallel into the execution cache that MyST-NB reads.

With ``execute_notebooks: cache``, MyST-NB executes a page when Sphinx
reads it and jupyter-cache has no record of its code, one page after the
other. This module does the same work before Sphinx reads anything, several
pages at a time, and stores each result exactly where and how MyST-NB
would (``myst_nb/core/execute/cache.py``), so that Sphinx then finds every
page in the cache and only renders.

What MyST-NB would execute is worked out with MyST-NB's own functions
(``myst_nb_job``): the page's text after Sphinx's ``source-read`` event
(which adds the dependency fingerprint of ``_ext/page_dependencies.py``),
read by MyST-NB's reader, with the page's own ``mystnb`` settings; the
cache key is jupyter-cache's hash of that notebook. Kernels come from
``tools/warm_kernel.py``: a new process and an empty namespace for every
page, without paying for the imports each time.

Used by ``_ext/parallel_execution.py`` (the build, ``python tools/build.py``)
and by the page tests (``executed_page``), so that a page executed by one
is found in the cache by the other.
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib.util
import os
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from tempfile import TemporaryDirectory
from types import SimpleNamespace
from typing import Callable

import nbformat

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Job:
    """A page as MyST-NB would execute it."""

    path: Path
    notebook: nbformat.NotebookNode  # MyST-NB's notebook: what it hashes and executes
    read_fmt: dict | None
    timeout: int
    allow_errors: bool
    in_temp: bool
    hashkey: str = ""


@dataclass
class Outcome:
    """What became of a job: ``cached`` (nothing to do), ``executed``, ``failed``
    (a cell raised: ``error`` is nbclient's CellExecutionError or CellTimeoutError,
    nothing is cached) or ``crashed`` (the execution itself broke: ``error``)."""

    job: Job
    status: str
    seconds: float | None = None
    error: BaseException | None = None
    notebook: nbformat.NotebookNode | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.job.path.name


# --- What MyST-NB executes ---------------------------------------------------------


def read_source(path: Path, encoding: str = "utf-8-sig") -> str:
    """A page's text as Sphinx reads it (docutils' FileInput normalises line ends)."""
    from docutils.io import FileInput

    return FileInput(source_path=str(path), encoding=encoding).read()


def myst_nb_job(path: Path, text: str, md_config, nb_config) -> Job | None:
    """The notebook MyST-NB's parser makes of ``text`` and would execute through
    the cache, or None (not a notebook, or not executed through the cache).

    Mirrors ``myst_nb.sphinx_.Parser.parse`` up to ``create_client`` and
    ``myst_nb.core.execute.create_client``.
    """
    from myst_nb.core.nb_to_tokens import nb_node_to_dict
    from myst_nb.core.read import create_nb_reader

    reader = create_nb_reader(str(path), md_config, nb_config, text)
    if reader is None:
        return None
    notebook = reader.read(text)
    kernel_name = notebook.metadata.get("kernelspec", {}).get("name", None)
    if kernel_name is not None and nb_config.kernel_rgx_aliases:
        import re

        for pattern, alias in nb_config.kernel_rgx_aliases.items():
            if re.fullmatch(pattern, kernel_name):
                notebook.metadata["kernelspec"]["name"] = alias
                break
    if nb_config.metadata_key in notebook.metadata:
        overrides = nb_node_to_dict(notebook.metadata[nb_config.metadata_key])
        overrides.pop("output_folder", None)
        try:
            nb_config = nb_config.copy(**overrides)
        except Exception:
            pass  # MyST-NB warns and keeps the book's settings
    posix_path = PurePosixPath(Path(path).as_posix())
    if any(posix_path.match(pattern) for pattern in nb_config.execution_excludepatterns or ()):
        return None
    if nb_config.execution_mode != "cache":
        return None
    return Job(Path(path), notebook, reader.read_fmt, nb_config.execution_timeout,
               nb_config.execution_allow_errors, nb_config.execution_in_temp)


@dataclass
class Book:
    """A book's MyST-NB settings without Sphinx, for the page tests."""

    root: Path
    md_config: object
    nb_config: object
    cache_path: Path
    source_encoding: str
    page_dependencies: object  # the module _ext/page_dependencies.py

    @classmethod
    def load(cls, root: Path = ROOT) -> "Book":
        from jupyter_book.config import get_final_config
        from myst_nb.core.config import NbParserConfig
        from myst_parser.config.main import MdParserConfig

        sphinx, _ = get_final_config(user_yaml=root / "_config.yml", sourcedir=root,
                                     cli_config={"latex_individualpages": False})

        def settings(config_class, prefix):
            return config_class(**{
                name: sphinx[prefix + name] for name, _, spec in config_class().as_triple()
                if not spec.metadata.get("sphinx_exclude") and prefix + name in sphinx
            })

        nb_config = settings(NbParserConfig, "nb_")
        # myst_nb.sphinx_ext.create_mystnb_config: next to the HTML output by default
        cache_path = Path(nb_config.execution_cache_path or root / "_build" / ".jupyter_cache")
        spec = importlib.util.spec_from_file_location(
            "page_dependencies", root / "_ext" / "page_dependencies.py")
        page_dependencies = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(page_dependencies)
        return cls(root, settings(MdParserConfig, "myst_"), nb_config, cache_path,
                   sphinx.get("source_encoding", "utf-8-sig"), page_dependencies)

    def job(self, page: Path) -> Job | None:
        text = self.source_read(page, read_source(page, self.source_encoding))
        return myst_nb_job(page, text, self.md_config, self.nb_config)

    def source_read(self, page: Path, text: str) -> str:
        """What Sphinx's source-read event makes of the text: the one handler
        of this book that changes it (``_ext/page_dependencies.py``), called
        as Sphinx calls it. ``tests/test_fast_build.py`` checks the result
        against a real build."""
        env = SimpleNamespace(doc2path=lambda docname: str(page), note_dependency=lambda name: None)
        source = [text]
        self.page_dependencies.add_fingerprint(SimpleNamespace(env=env), page.stem, source)
        return source[0]


# --- The cache ----------------------------------------------------------------------


@contextmanager
def file_lock(path: Path):
    """An exclusive lock between processes (the build, pytest-xdist workers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_path(cache_path: Path, name: str) -> Path:
    return Path(cache_path) / "locks" / f"{name}.lock"


def cached_notebook(cache, job: Job) -> nbformat.NotebookNode | None:
    """The page with the outputs of its cached execution, as MyST-NB merges them."""
    try:
        return cache.merge_match_into_notebook(job.notebook)[1]
    except KeyError:
        return None


# --- Execution -------------------------------------------------------------------------


async def run_notebook(job: Job, manager_class, env: dict | None = None):
    """``jupyter_cache.executors.utils.single_nb_execution`` as MyST-NB calls it
    (``meta_override=True``), awaiting nbclient instead of blocking. ``env`` is
    the kernel's environment (default: this process's, as in the build)."""
    from jupyter_cache.executors.utils import ExecutionResult
    from jupyter_cache.utils import Timer
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    notebook, timeout, allow_errors = job.notebook, job.timeout, job.allow_errors
    if "execution" in notebook.metadata:
        timeout = notebook.metadata.execution.get("timeout", timeout)
        allow_errors = notebook.metadata.execution.get("allow_errors", allow_errors)
    folder = TemporaryDirectory() if job.in_temp else nullcontext(str(job.path.parent))
    options = {"kernel_manager_class": manager_class} if manager_class else {}
    error = exc_string = None
    timer = Timer()
    with folder as cwd:
        cwd = os.path.abspath(cwd)
        client = NotebookClient(notebook, resources={"metadata": {"path": cwd}}, timeout=timeout,
                                allow_errors=allow_errors, record_timing=False, **options)
        with timer:
            try:
                await client.async_execute(**({"env": env} if env is not None else {}))
            except (CellExecutionError, CellTimeoutError) as err:
                error = err
                exc_string = "".join(traceback.format_exc())
    return ExecutionResult(notebook, cwd, timer.last_split, error, exc_string)


async def execute_one(job: Job, cache, cache_path: Path, slots: asyncio.Semaphore,
                      kernels: Callable, log: Callable[[str], None], env: dict | None) -> Outcome:
    from jupyter_cache.base import CacheBundleIn
    from jupyter_cache.cache.db import NbProjectRecord

    # One execution of a given code at a time, across processes: whoever
    # comes second finds the first one's result in the cache.
    lock = lock_path(cache_path, job.hashkey)
    lock.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock, "a")
    try:
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        notebook = cached_notebook(cache, job)
        if notebook is not None:
            return Outcome(job, "cached", notebook=notebook)
        async with slots:
            with file_lock(lock_path(cache_path, "database")):
                record = cache.add_nb_to_project(str(job.path), **(
                    {"read_data": job.read_fmt} if job.read_fmt is not None else {}))
                NbProjectRecord.remove_tracebacks([record.pk], cache.db)
            log(f"executing {job.path.name}")
            result = await run_notebook(job, kernels(), env)
        with file_lock(lock_path(cache_path, "database")):
            if result.err is not None:
                NbProjectRecord.set_traceback(record.uri, result.exc_string, cache.db)
            else:
                cache.cache_notebook_bundle(
                    CacheBundleIn(job.notebook, record.uri, data={"execution_seconds": result.time}),
                    check_validity=False, overwrite=True)
        status = "failed" if result.err is not None else "executed"
        log(f"{status} {job.path.name} in {result.time:.2f} s")
        return Outcome(job, status, result.time, result.err, job.notebook)
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def run_coroutine(make: Callable):
    """``asyncio.run(make())``, in a thread of its own if this one already runs an
    event loop (a caller inside Jupyter, or a test after one that left its loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(lambda: asyncio.run(make())).result()


def execute_jobs(jobs: list[Job], cache_path: Path, workers: int,
                 log: Callable[[str], None] = print, warm=None,
                 env: dict | None = None) -> list[Outcome]:
    """Bring every job's execution into the cache, ``workers`` at a time.

    ``warm`` is a running ``WarmKernels`` to use; without one, one is started
    if anything needs executing. Pages already in the cache are not executed.
    ``env`` is the kernels' environment (default: this process's).
    """
    from jupyter_cache import get_cache

    cache_path = Path(cache_path)
    cache = get_cache(str(cache_path))
    for job in jobs:
        job.hashkey = cache.create_hashed_notebook(job.notebook)[1]
    missing = [job for job in jobs if cached_notebook(cache, job) is None]
    if not missing:
        return [Outcome(job, "cached", notebook=cached_notebook(cache, job)) for job in jobs]

    log(f"{len(missing)} of {len(jobs)} pages to execute, {workers} at a time: "
        + ", ".join(job.path.name for job in missing))
    started = None

    def kernels():
        nonlocal started
        if warm is not None:
            return warm.manager_class
        if started is None:
            from tools.warm_kernel import WarmKernels

            started = WarmKernels(env)
        return started.manager_class

    async def run_all():
        slots = asyncio.Semaphore(max(1, workers))
        return await asyncio.gather(
            *(execute_one(job, cache, cache_path, slots, kernels, log, env) for job in missing),
            return_exceptions=True)

    try:
        results = dict(zip((id(job) for job in missing), run_coroutine(run_all)))
    finally:
        if started is not None:
            started.close()
    outcomes = []
    for job in jobs:
        result = results.get(id(job))
        if result is None:
            outcomes.append(Outcome(job, "cached", notebook=cached_notebook(cache, job)))
        elif isinstance(result, BaseException):
            log(f"could not execute {job.path.name}: {result!r}")
            outcomes.append(Outcome(job, "crashed", error=result))
        else:
            outcomes.append(result)
    return outcomes


# --- For the page tests -----------------------------------------------------------------

_warm_kernels: dict = {}


class ProcessWarmKernels:
    """One kernel template per process and kernel environment (each pytest-xdist
    worker), started the first time a page has to be executed."""

    def __init__(self, env: dict | None):
        self.env = env

    @property
    def manager_class(self):
        key = None if self.env is None else tuple(sorted(self.env.items()))
        if key not in _warm_kernels:
            import atexit

            from tools.warm_kernel import WarmKernels

            _warm_kernels[key] = WarmKernels(self.env)
            atexit.register(_warm_kernels[key].close)
        return _warm_kernels[key].manager_class


@lru_cache(maxsize=None)
def book(root: Path) -> Book:
    return Book.load(root)


def book_root(page: Path) -> Path | None:
    """The book a page belongs to: the nearest folder above it with a _config.yml."""
    for folder in Path(page).resolve().parents:
        if (folder / "_config.yml").is_file():
            return folder
    return None


@dataclass
class PageExecution:
    """Like pytest-notebook's ExecuteResult: ``exec_error`` (None, or nbclient's
    CellExecutionError / CellTimeoutError) and ``notebook``: the page's cells as
    jupytext reads them, with the outputs of the execution."""

    exec_error: BaseException | None
    notebook: nbformat.NotebookNode
    status: str  # Outcome.status: "cached", "executed" or "failed"


def executed_page(page: Path, env: dict | None = None) -> PageExecution:
    """A page executed exactly as the book's build executes it, shared with the build.

    Taken from the book's execution cache when its code (with what it
    depends on) has been executed before, by the build or another test;
    otherwise executed now in a fresh kernel and, when it succeeds, cached,
    so that the build does not execute it again. ``env`` updates the kernel's
    environment (the build's is this process's, updated by _ext/kernel_environment.py).
    A page outside a book (no _config.yml above it) is executed with this
    book's settings and not cached.
    """
    page = Path(page).resolve()
    if env is not None:
        # The whole environment, as pytest-notebook passes it; without the one
        # variable that changes from test to test, so that the kernel template
        # of this process (whose environment must match) serves every test.
        env = {**{k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}, **env}
    root = book_root(page)
    settings = book(root if root is not None else ROOT)
    job = settings.job(page)
    cached = root is not None and job is not None
    if job is None:  # not executed by the build: execute it all the same, uncached
        job = myst_nb_job(page, settings.source_read(page, read_source(page)), settings.md_config,
                          settings.nb_config.copy(execution_mode="cache", execution_excludepatterns=[]))
        if job is None:
            raise ValueError(f"{page} is not a notebook page")
    with nullcontext(settings.cache_path) if cached else TemporaryDirectory() as cache_path:
        (outcome,) = execute_jobs([job], Path(cache_path), 1, log=lambda message: None,
                                  warm=ProcessWarmKernels(env), env=env)
    if outcome.status == "crashed":
        raise outcome.error
    return PageExecution(outcome.error, as_page_notebook(page, outcome.notebook), outcome.status)


def as_page_notebook(page: Path, executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The page as jupytext reads it, each code cell with the outputs of the
    same cell of ``executed`` (MyST-NB's notebook). Cells that the build adds
    after the page's own (the dependency fingerprint) are left out."""
    import copy

    import jupytext

    notebook = jupytext.read(page)
    ours = [cell for cell in notebook.cells if cell.cell_type == "code"]
    theirs = [cell for cell in executed.cells if cell.cell_type == "code"]
    if len(theirs) < len(ours) or any(a.source != b.source for a, b in zip(ours, theirs)):
        raise AssertionError(
            f"{page.name}: jupytext and MyST-NB read different code cells "
            f"({len(ours)} and {len(theirs)}); the page tests cannot check the build's execution")
    for cell, executed_cell in zip(ours, theirs):
        cell.outputs = copy.deepcopy(executed_cell.get("outputs", []))
        cell.execution_count = executed_cell.get("execution_count")
    return notebook
