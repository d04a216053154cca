"""Execute the pages Sphinx is about to read in parallel, before it reads them.

Active only in the book's build command, ``python tools/build.py``, which
sets BOOK_EXECUTION_WORKERS; a plain ``jupyter-book build`` executes pages
one after the other as usual.

Sphinx announces the pages it will read (new or changed pages, and pages
whose dependencies changed) with the ``env-before-read-docs`` event. For
each, this extension works out what MyST-NB will execute when it reads the
page: the page's text after the ``source-read`` event (as Sphinx emits it),
read by MyST-NB's reader with the book's MyST-NB settings. The pages whose
code is not in the execution cache are executed in parallel into that
cache (tools/page_execution.py); MyST-NB then finds every page there.
A page that fails is not cached: MyST-NB executes it again and reports the
error as it always does.
"""

from __future__ import annotations

import os
from pathlib import Path

from sphinx.util import logging

WORKERS_VARIABLE = "BOOK_EXECUTION_WORKERS"
logger = logging.getLogger(__name__)


def source_after_source_read(app, env, docname: str) -> str | None:
    """The text MyST-NB's parser receives for ``docname`` (sphinx.io.SphinxStandaloneReader)."""
    from sphinx.util.docutils import sphinx_domains

    from tools.page_execution import read_source

    try:
        text = read_source(Path(env.doc2path(docname)), app.config.source_encoding)
    except (OSError, UnicodeError):
        return None  # Sphinx reports it when it reads the page
    source = [text]
    env.prepare_settings(docname)
    try:
        # Silently: handlers that warn (_ext/page_checks.py) warn again when
        # Sphinx reads the page, where the warning belongs.
        with sphinx_domains(env), logging.suppress_logging():
            app.events.emit("source-read", docname, source)
    finally:
        env.temp_data.clear()
    return source[0]


def execute_before_reading(app, env, docnames: list[str]) -> None:
    workers = int(os.environ.get(WORKERS_VARIABLE) or 0)
    if workers < 1 or not docnames:
        return
    from tools.page_execution import execute_jobs, myst_nb_job

    jobs = []
    for docname in docnames:
        text = source_after_source_read(app, env, docname)
        if text is not None:
            job = myst_nb_job(Path(env.doc2path(docname)), text, env.myst_config, env.mystnb_config)
            if job is not None:
                jobs.append(job)
    if not jobs:
        return
    outcomes = execute_jobs(jobs, Path(env.mystnb_config.execution_cache_path), workers,
                            log=lambda message: logger.info(f"[parallel execution] {message}"))
    for outcome in outcomes:
        if outcome.status in ("failed", "crashed"):
            logger.info(f"[parallel execution] {outcome.name} failed: MyST-NB will execute it "
                        "again and report the error")


def setup(app):
    app.connect("env-before-read-docs", execute_before_reading)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
