"""The download button of every page gives a notebook that runs on its own.

sphinx-book-theme offers, under the download button, the notebook that
MyST-NB executed (``_build/jupyter_execute/<page>.ipynb``, copied to
``_build/html/_sources/<page>.ipynb``). As it comes, that notebook is the
page's MyST Markdown with its outputs: Jupyter shows roles such as
``{ref}`` and directives such as ``{exercise}`` as raw text, and a page that
loads code from other pages (``load_engine``, listed under ``depends_on:``)
fails outside the book, where those pages and jupytext are missing.

This extension rewrites that copy with ``tools.learner_notebooks``, keeping
the worked solutions and every output: MyST becomes plain Jupyter Markdown,
the engine cells of other pages are copied in, and glued values appear in
the text. It runs after the theme has copied the notebook (its handler has
priority 501). A page the converter cannot handle fails the build with a
warning that names it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
from sphinx.util import logging

logger = logging.getLogger(__name__)
sys.path.append(str(Path(__file__).resolve().parent.parent))  # for tools.learner_notebooks


def rewrite_download(app, pagename, templatename, context, doctree) -> None:
    try:
        from tools.learner_notebooks import Book, ConversionError, download_notebook
    except ModuleNotFoundError:  # a book built from a copy of _ext/ alone (as some tests do)
        logger.info("tools/learner_notebooks.py not found: downloads are left as MyST-NB wrote them")
        return

    source = context.get("ipynb_source")
    page = Path(app.env.doc2path(pagename))
    copy = Path(app.outdir) / "_sources" / source if source else None
    if copy is None or page.suffix != ".md" or not copy.exists():
        return
    if not (Path(app.srcdir) / "_toc.yml").exists():  # a single page built alone: no book
        return
    if not hasattr(app, "learner_book"):
        app.learner_book = Book(Path(app.srcdir))
    # MyST-NB keeps the glued values apart from the executed notebook, in
    # jupyter_execute/<page>.glue.json (written when it executes the page).
    glue_file = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.glue.json"
    glued = json.loads(glue_file.read_text()) if glue_file.exists() else {}
    glue = {name: "".join(output["data"]["text/plain"]) for name, output in glued.items()
            if "text/plain" in output.get("data", {})}
    try:
        executed = with_cached_outputs(app, nbformat.read(copy, as_version=4))
        notebook = download_notebook(page, executed, glue, app.learner_book)
    except ConversionError as error:
        logger.warning(f"the download notebook of {pagename} cannot be made: {error}", location=pagename)
        return
    nbformat.write(notebook, copy)


def with_cached_outputs(app, notebook):
    """The notebook with the outputs that the execution cache holds for it.

    When MyST-NB 1.4 takes a page from the execution cache, it renders the
    cached outputs but writes jupyter_execute/<page>.ipynb from the notebook
    it read, without them (myst_nb/sphinx_.py writes ``notebook``, while the
    cache client replaced its own copy). Without this, every download after
    the first build would have no outputs.
    """
    if any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"):
        return notebook
    cache_path = app.env.mystnb_config.execution_cache_path
    if not cache_path or not Path(cache_path).exists():
        return notebook
    from jupyter_cache import get_cache

    try:
        _, merged = get_cache(cache_path).merge_match_into_notebook(notebook)
    except KeyError:  # not in the cache: the page was not executed
        return notebook
    return merged


def setup(app):
    app.connect("html-page-context", rewrite_download, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
