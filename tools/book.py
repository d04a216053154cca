"""The book's Sphinx extension (``sphinx: local_extensions`` in _config.yml).

- Execution (``tools/execution.py``): MyST-NB's cache is this environment's
  cache, and before Sphinx reads the pages it is about to read, those whose
  code is not cached are executed in parallel. MyST-NB then finds them all
  in the cache. A page that fails is not cached: MyST-NB executes it again
  and reports the error as usual.
- Checks that fail the build under ``-W``, naming the page's line: front
  matter that is not valid YAML (MyST says only "Malformed YAML"), and a
  cell whose error is not the one it promises (MyST-NB runs cells tagged
  ``raises-exception`` whether or not they raise).
- The download button gives the page as a plain notebook that runs on its
  own, with outputs and solutions (``tools/learner_notebooks.py``).
- Live cells (``tools/live.py``): Part I's pure-Python cells run and can
  be edited in the browser, with Pyodide served by the site.
- HTML fixes found by the browser tests: sphinx-thebe 0.3.1 registers its
  inline script late, and Sphinx 7.4 writes it twice ("Identifier
  'THEBE_JS_URL' has already been declared"); docutils' deprecated
  ``role="doc-biblioentry"`` leaves the bibliography list without items
  for screen readers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
from docutils import nodes
from sphinx.util import logging

from tools import execution, pages

logger = logging.getLogger(__name__)
TAG = "raises-exception"


def use_environment_cache(app, config) -> None:
    build = Path(app.outdir).parent
    config.nb_execution_cache_path = str(execution.cache_path(build))
    os.environ.update(execution.kernel_environment(build))


def execute_in_parallel(app, env, docnames: list[str]) -> None:
    if env.mystnb_config.execution_mode != "cache":
        return
    notebooks = []
    for path in (Path(env.doc2path(name)) for name in docnames):
        try:
            if "kernelspec" in pages.front_matter(path):
                notebooks.append(path)
        except pages.FrontMatterError:
            pass  # reported when Sphinx reads the page
    if not notebooks:
        return
    outcome = execution.execute(
        notebooks, Path(env.mystnb_config.execution_cache_path),
        env.mystnb_config.execution_timeout)
    failed = sum(error is not None for error in outcome.values())
    if outcome:
        logger.info(f"[execution] {len(outcome) - failed} page(s) executed in"
                    f" parallel, {failed} failed (MyST-NB executes those "
                    "again and reports the error)")


def check_front_matter(app, docname: str, source: list[str]) -> None:
    try:
        pages.parse_front_matter(source[0], Path(app.env.doc2path(docname)))
    except pages.FrontMatterError as error:
        logger.warning(f"the front matter is not valid YAML: {error.problem}",
                       location=(docname, error.line), type="book",
                       subtype="front_matter")


def summary(traceback: str) -> str:
    """The ``Name: message`` line of a traceback."""
    lines = [line.strip() for line in traceback.splitlines()
             if re.match(r"^[\w.]+(:|$)", line.strip())]
    return (lines or traceback.strip().splitlines())[-1][:120]


def check_cells(app, doctree: nodes.document) -> None:
    path = Path(app.env.doc2path(app.env.docname))
    lines = None
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") != "cell_code":
            continue
        if lines is None:
            lines = pages.read_notebook(path).metadata.get("source_map", [])
        index = cell.get("cell_index", 0)
        location = (app.env.docname, lines[index] if index < len(lines)
                    else None)
        metadata = cell.get("cell_metadata") or {}
        tags = metadata.get("tags") or []
        errors = [block.astext() for block in cell.findall(nodes.literal_block)
                  if "traceback" in block.get("classes", [])]

        def warn(message: str) -> None:
            logger.warning(message, location=location, type="book",
                           subtype="cells")

        if TAG not in tags:
            if errors:
                warn(f"code cell raised {summary(errors[0])} but is not "
                     f"tagged {TAG}")
                return  # the page stopped here: later cells have no output
            continue
        expected = metadata.get("expect_error")
        if not expected:
            warn(f"code cell is tagged {TAG} but names no `:expect_error:`")
        elif {"remove-output", "remove-cell"} & set(tags):
            warn(f"code cell is tagged {TAG} and hides its output: show the "
                 "error, or the build cannot check it")
        elif not errors:
            warn(f"code cell expects {expected}, but it raised nothing")
        elif not re.search(rf"^(?:[\w.]+\.)?{re.escape(expected)}(?::|\s*$)",
                           errors[0], re.MULTILINE):
            warn(f"code cell expects {expected} but raised "
                 f"{summary(errors[0])}")


def rewrite_download(app, pagename, templatename, context, doctree) -> None:
    from tools.learner_notebooks import current_book, download_notebook

    source = context.get("ipynb_source")
    copy = Path(app.outdir) / "_sources" / source if source else None
    page = Path(app.env.doc2path(pagename))
    if copy is None or not copy.exists() or not pages.is_notebook(page):
        return
    cache = Path(app.env.mystnb_config.execution_cache_path)
    notebook, failure = execution.executed(page, cache)
    if failure:
        return  # MyST-NB has reported the failed page
    try:
        book = current_book(Path(app.srcdir))
        nbformat.write(download_notebook(page, notebook, book), copy)
    except Exception as error:  # noqa: BLE001  a broken page elsewhere, say
        logger.warning(f"the download notebook cannot be made: {error}",
                       location=pagename, type="book", subtype="download")


def fix_html(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        seen, unique = set(), []
        for script in scripts:
            key = (getattr(script, "filename", script) or "",
                   tuple(sorted((k, str(v)) for k, v in
                                (getattr(script, "attributes", {}) or {})
                                .items())))
            if key not in seen:
                seen.add(key)
                unique.append(script)
        context["script_files"] = unique
    body = context.get("body")
    if body and 'role="doc-biblioentry"' in body:
        context["body"] = body.replace('role="doc-biblioentry"',
                                       'role="listitem"')


def setup(app):
    # Part I's cells run in the reader's browser (tools/live.py).
    app.setup_extension("tools.live")
    # Before MyST-NB reads its configuration (builder-inited).
    app.connect("config-inited", use_environment_cache)
    app.connect("env-before-read-docs", execute_in_parallel)
    app.connect("source-read", check_front_matter)
    app.connect("doctree-read", check_cells)
    # After the theme has copied the notebook (priority 501) and after
    # MathJax has added its scripts.
    app.connect("html-page-context", rewrite_download, priority=600)
    app.connect("html-page-context", fix_html, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
