"""Executing pages: one cache, one kernel environment, for the build and tests.

MyST-NB (``execute_notebooks: cache``) keeps executed pages in jupyter-cache
and executes a page when its code is not there, one page after the other.
``execute`` fills the same cache first with jupyter-cache's own parallel
executor, so that Sphinx then finds every page there; the page tests read
their executions from it (``executed``).

The cache lives in ``_build/.jupyter_cache/<environment key>/``. The key is a
hash of the Python version and of every installed distribution and its
version, so a change of any pin (or a local upgrade) starts a new cache and
every page runs again; outputs made with other packages are never reused.
Caches of other environments are removed.

Every kernel runs with ``kernel_environment()``: one thread, so that pages
run in parallel do not fight over the cores; a fixed hash seed; and an
IPython profile of the book's own, so that a contributor's IPython start-up
files do not run in pages, and kernels log errors only (ipykernel 7 warns
"Kernel is running over TCP without encryption" at every start; the kernel
listens on 127.0.0.1 only).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import shutil
from pathlib import Path

import nbformat
from jupyter_cache import get_cache
from jupyter_cache.executors import load_executor

from tools.pages import ROOT, read_notebook

KERNEL_ENV = {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
KERNEL_CONFIG = '{"IPKernelApp": {"log_level": "ERROR"}}\n'
# jupyter-cache reads pages with MyST-NB's reader, as MyST-NB does.
READER = {"name": "myst_nb_md", "type": "plugin"}
TIMEOUT = 300  # seconds per cell, as execute.timeout in _config.yml


def environment_key() -> str:
    """A hash of the Python version and of every installed package."""
    packages = sorted(f"{d.metadata['Name']}=={d.version}".lower()
                      for d in importlib.metadata.distributions())
    text = "\n".join([platform.python_version(), *packages])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def kernel_environment(build: Path = ROOT / "_build") -> dict:
    """The environment variables of every kernel that runs a page."""
    profile = build / "ipython" / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "ipython_kernel_config.json").write_text(KERNEL_CONFIG)
    return {**KERNEL_ENV, "IPYTHONDIR": str(profile.parent)}


def cache_path(build: Path = ROOT / "_build") -> Path:
    """This environment's execution cache; other environments' are removed."""
    caches = build / ".jupyter_cache"
    path = caches / environment_key()
    if caches.is_dir():
        for other in caches.iterdir():
            if other != path and other.is_dir():
                shutil.rmtree(other, ignore_errors=True)
    return path


def execute(pages: list[Path], cache: Path, timeout: int = TIMEOUT) -> dict:
    """Execute, in parallel, the pages whose code is not in ``cache``.

    Returns jupyter-cache's result: lists of the pages that ``succeeded``,
    ``excepted`` (a cell raised: not cached, the traceback is kept) and
    ``errored`` (the execution itself broke).
    """
    # Kernels inherit this process's environment.
    os.environ.update(kernel_environment(cache.parent.parent))
    store = get_cache(str(cache))
    uris = [str(page) for page in pages]
    for uri in uris:
        store.add_nb_to_project(uri, read_data=READER)
    executor = load_executor("local-parallel", store)
    result = executor.run_and_cache(filter_uris=uris, timeout=timeout)
    return {"succeeded": result.succeeded, "excepted": result.excepted,
            "errored": result.errored}


def executed(page: Path, cache: Path) -> tuple[nbformat.NotebookNode, str]:
    """The page's notebook with its cached outputs, and '' ; or the notebook
    without outputs and the traceback of its failed execution."""
    store = get_cache(str(cache))
    notebook = read_notebook(page)
    try:
        _, merged = store.merge_match_into_notebook(notebook)
        return merged, ""
    except KeyError:
        pass
    try:
        traceback = store.get_project_record(str(page)).traceback
    except KeyError:
        traceback = None
    return notebook, traceback or f"{page.name} was not executed"
