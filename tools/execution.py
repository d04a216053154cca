"""Executing pages: one cache, one kernel environment, for the build and tests.

MyST-NB (``execute_notebooks: cache``) keeps executed pages in jupyter-cache
and executes a page when its code is not there, one page after the other.
``execute`` fills the same cache first, several pages at a time, with
jupyter-cache's own execution function and caching call (the ones MyST-NB
uses), so that Sphinx then finds every page there; the page tests read
their executions from it (``executed``).

The cache lives in ``_build/.jupyter_cache/<environment key>/``. The key is a
hash of the Python version and of every installed distribution and its
version, so a change of any pin (or a local upgrade) starts a new cache and
every page runs again; outputs made with other packages are never reused.
Caches of other environments are removed.

Every kernel runs with ``kernel_environment()``: one thread, so that pages
run in parallel do not fight over the cores; a fixed hash seed; and an
IPython profile of the book's own, so that a contributor's IPython start-up
files do not run in pages, configured by ``tools/ipython_kernel_config.py``
(kernels log errors only, and not ipykernel's shutdown race).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from jupyter_cache.executors.utils import single_nb_execution

from tools.pages import ROOT, read_notebook

KERNEL_ENV = {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
KERNEL_CONFIG = Path(__file__).with_name("ipython_kernel_config.py")
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
    shutil.copyfile(KERNEL_CONFIG, profile / KERNEL_CONFIG.name)
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


def run(job: tuple[Path, nbformat.NotebookNode, int]) -> tuple:
    """Execute one page in a fresh kernel, in its own folder, as MyST-NB
    does: (notebook with outputs, seconds, error text or None)."""
    page, notebook, timeout = job
    result = single_nb_execution(notebook, cwd=str(page.parent),
                                 timeout=timeout, allow_errors=False)
    return notebook, result.time, result.exc_string if result.err else None


def execute(pages: list[Path], cache: Path, timeout: int = TIMEOUT) -> dict:
    """Execute, in parallel, the pages whose code is not in ``cache``, and
    cache those that succeed. Returns {page: error text or None}."""
    os.environ.update(kernel_environment(cache.parent.parent))
    store = get_cache(str(cache))
    jobs = []
    for page in pages:
        notebook = read_notebook(page)
        try:
            store.match_cache_notebook(notebook)
        except KeyError:
            jobs.append((page, notebook, timeout))
    if not jobs:
        return {}
    jobs.sort(key=lambda job: -job[0].stat().st_size)  # long pages first
    # Kernels do the work; one process a core keeps one kernel a core busy.
    # The results are cached here, one after the other: jupyter-cache 1.0.1's
    # own parallel executor caches from its workers, and two workers that
    # cache at once can delete each other's records (truncate_caches).
    with ProcessPoolExecutor(min(len(jobs), os.cpu_count() or 1)) as pool:
        results = list(pool.map(run, jobs))
    outcome = {}
    for (page, _, _), (notebook, seconds, error) in zip(jobs, results):
        outcome[page] = error
        if error is None:
            store.cache_notebook_bundle(
                CacheBundleIn(notebook, str(page),
                              data={"execution_seconds": seconds}),
                check_validity=False, overwrite=True)
    return outcome


def executed(page: Path, cache: Path) -> tuple[nbformat.NotebookNode, str]:
    """The page's notebook with its cached outputs and ''. A page that is
    not cached is executed now; if it fails: the notebook and the error."""
    notebook = read_notebook(page)
    try:
        return get_cache(str(cache)).merge_match_into_notebook(notebook)[1], ""
    except KeyError:
        error = execute([page], cache).get(page)
    if error:
        return notebook, error
    return executed(page, cache)
