"""Fixes to the HTML of every page that need Python, found by ``tests/test_browser.py``.

- sphinx-thebe (0.3.1, loaded by Jupyter Book) registers its inline
  ``<script>const THEBE_JS_URL = ...</script>`` after the HTML builder has
  started. Sphinx 7.4 then adds that script to every page twice (once as
  filename ``None``, once as ``''``, which it does not see as equal), and the
  second copy throws "Identifier 'THEBE_JS_URL' has already been declared"
  on every page. Identical scripts are written once here.
- Docutils marks each bibliography entry ``role="doc-biblioentry"`` inside a
  ``role="list"``; that role is deprecated (DPUB-ARIA 1.1 says to use
  ``listitem``), so a list with only such children has no items for a screen
  reader (axe-core: aria-required-children, critical). Entries become
  ``role="listitem"``.

What needs only the browser (CSS, JavaScript) lives in ``_static/``.
"""

from __future__ import annotations


def script_key(script) -> tuple:
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return (filename, tuple(sorted((k, str(v)) for k, v in attributes.items())))


def fix_page(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        seen, unique = set(), []
        for script in scripts:
            key = script_key(script)
            if key not in seen:
                seen.add(key)
                unique.append(script)
        context["script_files"] = unique
    body = context.get("body")
    if body and 'role="doc-biblioentry"' in body:
        context["body"] = body.replace('role="doc-biblioentry"', 'role="listitem"')


def setup(app):
    # After every other handler (MathJax adds its scripts in this event too).
    app.connect("html-page-context", fix_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
