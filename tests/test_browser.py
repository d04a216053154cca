"""Every page of the built book, read in headless Chromium with no network.

The book built by README command (1) (the ``built_book`` fixture) is served
from ``_build/html`` on 127.0.0.1, and Debian's Chromium loads each page as a
reader's first visit, once with a light and once with a dark system
preference. Every request to another host is blocked and fails the page.
A page fails on:

- a request to another host, a failed request or an HTTP error (the
  browser's own /favicon.ico included), a console error, a script loaded
  twice;
- maths not typeset by MathJax (a ``.math`` element without MathJax output,
  a MathJax error, or TeX such as ``\\frac`` or ``$$`` visible in the prose);
- an image without alt text, or one that did not load; a figure whose alt
  text is its file name (docutils' fallback when ``image: alt:`` is missing)
  or under five words; a cell's image that is not a figure with a caption;
- an error shown on purpose that does not start with ``ExceptionType:
  message``, carries a traceback or runs over 12 lines, or whose type is
  not the one its ``raises-exception`` cell names;
- any serious or critical axe-core violation;
- a page not showing the theme the system prefers.

Each page's decoded weight (the page and everything it loaded) is reported
at the end of the run and written to ``_build/page-weights.json``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import sync_playwright

import browser_pages as bp
from tools.pages import ROOT, toc_files

SPECIAL_PAGES = ["genindex.html", "search.html"]


def toc_pages() -> list[str]:
    """The HTML page of every file in _toc.yml, and Sphinx's index and search pages."""
    return [f"{f.relative_to(ROOT).with_suffix('').as_posix()}.html"
            for f in toc_files()] + SPECIAL_PAGES


PAGES = toc_pages()


@pytest.fixture(scope="session")
def html(built_book) -> Path:
    assert (built_book.html / "index.html").exists(), (
        "the book did not build (see test_build.py):\n" + "\n".join(built_book.log.splitlines()[-30:])
    )
    return built_book.html


@pytest.fixture(scope="session")
def server(html):
    with bp.BookServer(html) as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    assert Path(bp.CHROMIUM).exists(), f"{bp.CHROMIUM} is missing: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = bp.launch(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def axe() -> Axe:
    return Axe()  # axe-core's axe.min.js as shipped in the package: nothing is downloaded


def test_every_built_page_is_tested(html):
    built = set(bp.html_pages(html))
    assert built == set(PAGES), (
        f"built but not tested: {sorted(built - set(PAGES))}; "
        f"tested but not built: {sorted(set(PAGES) - built)}"
    )


@pytest.mark.parametrize("theme", bp.THEMES)
@pytest.mark.parametrize("page", PAGES)
def test_page_in_browser(page, theme, html, server, browser, axe, record_property):
    source = bp.source_of(page, ROOT)
    expected = bp.expected_errors(source) if source else None
    context = bp.new_context(browser, theme)
    try:
        report = bp.check_page(context, server, page, theme, expected, axe)
    finally:
        context.close()
    record_property("page_weight", {"page": page, "theme": theme, "weight": report.weight,
                                    "requests": report.requests})
    assert not report.problems, (
        f"{page} ({theme} theme, {report.weight / 1024:.0f} KB decoded, "
        f"{report.requests} requests) has {len(report.problems)} problems:\n  - "
        + "\n  - ".join(report.problems)
    )


def test_theme_asset_override_matches_the_theme():
    """_templates/static/webpack-macros.html is the theme's file less fontawesome.js.

    It replaces the theme's own list of assets, so an upgraded theme that
    changed its list would be silently cut off from it: compare the two.
    """
    import pydata_sphinx_theme

    theme = Path(pydata_sphinx_theme.__file__).parent / "theme/pydata_sphinx_theme/static/webpack-macros.html"
    ours = ROOT / "_templates/static/webpack-macros.html"

    def lines(text: str) -> list[str]:
        text = re.sub(r"\{#.*?#\}|<!--.*?-->", "", text, flags=re.S)
        return [line.strip() for line in text.splitlines() if line.strip()]

    expected = [line for line in lines(theme.read_text()) if "fontawesome.js" not in line]
    assert len(expected) == len(lines(theme.read_text())) - 1, "the theme no longer loads fontawesome.js"
    assert lines(ours.read_text()) == expected, (
        f"{ours.relative_to(ROOT)} is out of step with {theme}: copy the theme's file again "
        "without its fontawesome.js <script> line"
    )
