"""Every page of the built book, read in headless Chromium with no network.

The book built by README command (1) (the ``built_book`` fixture) is served
from ``_build/html`` on 127.0.0.1, and Debian's Chromium loads each page as a
reader's first visit, once with a light and once with a dark system
preference. Every request to another host is blocked and fails the page.
A page fails on:

- a request to another host, a failed request or an HTTP error (the
  browser's own /favicon.ico included), a console error, a script loaded
  twice;
- maths not typeset by KaTeX (a ``.math`` element without KaTeX output,
  TeX that KaTeX cannot read, or TeX such as ``\\frac`` or ``$$`` visible
  in the prose), or a KaTeX other than the one in ``vendor/``;
- an image without alt text, or one that did not load; a figure whose alt
  text is its file name (docutils' fallback when ``image: alt:`` is missing)
  or under five words; a cell's image that is not a figure with a caption;
- an error shown on purpose that does not start with ``ExceptionType:
  message``, carries a traceback or runs over 12 lines, or whose type is
  not the one its ``raises-exception`` cell names;
- any serious or critical axe-core violation;
- a page not showing the theme the system prefers;
- its layout, with every folded cell and solution opened: at 1280 px a
  code box (cell or code block) with a horizontal scroll bar, or ``glue(``
  in a shown code cell; at 1280 px and at 400 px (a phone), a display
  equation wider than its column, an equation number drawn over its
  equation's maths, controls of the header or the sidebars drawn over each
  other, or more than one search field; at 400 px, a page wider than the
  screen;
- an icon whose glyph the cut-down Font Awesome fonts lack
  (``vendor/update_icons.py``).

Each page's decoded weight (the page and everything it loaded) is reported
at the end of the run and written to ``_build/page-weights.json``;
``test_median_page_weight`` holds the median to 1.5 MB.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe

import browser_pages as bp
from tools.pages import ROOT, toc_files

SPECIAL_PAGES = ["genindex.html", "search.html"]


def toc_pages() -> list[str]:
    """The HTML page of every file in _toc.yml, and Sphinx's index and search pages."""
    return [f"{f.relative_to(ROOT).with_suffix('').as_posix()}.html"
            for f in toc_files()] + SPECIAL_PAGES


PAGES = toc_pages()


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
    bp.record_weight(html, report)
    record_property("page_weight", {"page": page, "theme": theme, "weight": report.weight,
                                    "requests": report.requests})
    assert not report.problems, (
        f"{page} ({theme} theme, {report.weight / 1024:.0f} KB decoded, "
        f"{report.requests} requests) has {len(report.problems)} problems:\n  - "
        + "\n  - ".join(report.problems)
    )


MAX_MEDIAN_WEIGHT = 1_500_000  # bytes, decoded: 1.5 MB


def test_median_page_weight(html, server, browser):
    """The median page, with everything it loads, weighs at most 1.5 MB decoded
    (2.47 MB with MathJax and the whole of Font Awesome). Weights do not
    depend on the theme: each page is loaded once, in a fresh profile. The
    weight test_page_in_browser measured on the same build of a page (light
    theme) is taken as it is; a page it has not loaded yet is loaded here."""
    reports = []
    for page in PAGES:
        report = bp.recorded_weight(html, page, "light")
        if report is None:
            context = bp.new_context(browser, "light")
            try:
                report = bp.measure_weight(context, server, page)
            finally:
                context.close()
        reports.append(report)
    median = bp.median_weight(reports)
    print("\n" + bp.weights_table(reports))
    assert median <= MAX_MEDIAN_WEIGHT, (
        f"median decoded page weight {median / 1e6:.2f} MB, over "
        f"{MAX_MEDIAN_WEIGHT / 1e6:.1f} MB:\n{bp.weights_table(reports)}")


# Moves a typeset equation's number onto the first run of its maths.
COVER_NUMBER = r"""
() => {
  const eq = [...document.querySelectorAll("div.math")].find((el) => el.querySelector(".katex-html > *"));
  const number = eq.querySelector(".eqno");
  number.style.cssText = "";
  const run = eq.querySelector(".katex-html > *").getBoundingClientRect();
  const box = number.getBoundingClientRect();
  number.style.cssText = `position: relative; left: ${run.left - box.left}px; top: ${run.top - box.top}px`;
}
"""


def test_layout_checks_find_what_they_look_for(html, server, browser):
    """The layout checks fail a page that breaks them: a page is broken on
    purpose in the browser, one way for each check, and each is reported."""
    page = "book/part2-pytorch/autograd-basics.html"
    breakage = r"""
    () => {
      const article = document.querySelector("article");
      const eq = document.createElement("div");
      eq.className = "math";
      eq.innerHTML = '<span class="eqno">(99)</span><span class="katex-display">'
        + '<span style="display:inline-block;width:2000px">wide</span></span>';
      article.prepend(eq);
      const code = document.querySelector("div.cell_input pre");
      code.textContent = "x = " + "1 + ".repeat(40) + "1\nglue('name', x)";
      const wide = document.createElement("p");
      wide.style.cssText = "width: 900px; min-width: 900px";
      wide.textContent = "wide";
      article.append(wide);
      const field = document.querySelector(".bd-sidebar-primary .search-button-field");
      const button = document.querySelector(".bd-header-article button");
      const copy = field.cloneNode(true);
      copy.style.cssText = "position: fixed; left: 0; top: 0; z-index: 9999; width: 3000px";
      document.body.append(copy);
      // On a phone the theme shows the search button and hides the field.
      const icon = document.querySelector(".bd-header-article .search-button").cloneNode(true);
      icon.style.cssText = "position: fixed; right: 0; bottom: 0";
      document.body.append(icon);
      const over = button.cloneNode(true);
      button.parentElement.append(over);
      over.style.cssText = "position: absolute; left: 0; top: 0";
    }
    """
    for theme in bp.THEMES:
        context = bp.new_context(browser, theme)
        browser_page = context.new_page()
        try:
            browser_page.goto(server.base + page, wait_until="load")
            browser_page.evaluate(breakage)
            browser_page.evaluate(COVER_NUMBER)
            desk = browser_page.evaluate(bp.LAYOUT_JS)
            browser_page.set_viewport_size(bp.PHONE)
            browser_page.evaluate(COVER_NUMBER)
            phone = browser_page.evaluate(bp.LAYOUT_JS)
        finally:
            context.close()
        problems = "\n".join(bp.layout_problems(desk, phone))
        for expected in ("display equation wider than its column at 1280 px", "(99)",
                         "display equation wider than its column at 400 px",
                         "equation number drawn over its equation at 1280 px",
                         "equation number drawn over its equation at 400 px",
                         "code box with a horizontal scroll bar at 1280 px",
                         "glue( shown in a code cell", "search fields shown at 1280 px",
                         "search fields shown at 400 px",
                         "drawn over each other in the header or sidebar at 1280 px",
                         "drawn over each other in the header or sidebar at 400 px",
                         "px wide on a 400 px screen"):
            assert expected in problems, f"{theme}: not found: {expected!r} in\n{problems}"
    assert bp.icon_problems([["Font Awesome 6 Free", "900", 0xF0C9, "i.fa-bars"],
                             ["Font Awesome 6 Free", "900", 0xF6D1, "i.fa-dragon"]], html) == [
        "icon U+F6D1 of fa-solid-900.woff missing (drawn by i.fa-dragon): "
        "run `python vendor/update_icons.py`"]


def test_layout_override_matches_the_theme():
    """_templates/layout.html is the theme's `extrahead` block less its search
    scripts: compare it with the theme's, as for webpack-macros.html below."""
    import pydata_sphinx_theme

    theme = (Path(pydata_sphinx_theme.__file__).parent
             / "theme/pydata_sphinx_theme/layout.html").read_text()
    ours = (ROOT / "_templates/layout.html").read_text()

    def block(text: str) -> list[str]:
        body = re.search(r"\{%-? block extrahead %\}(.*?)\{%-? endblock", text, re.S).group(1)
        body = re.sub(r"\{#.*?#\}", "", body, flags=re.S)
        return [line.strip() for line in body.splitlines() if line.strip()]

    search = ("{% if pagename == 'search' %}", "{% else %}", "{% endif %}",
              "searchtools.js", "language_data.js", "searchindex.js")
    expected = [line for line in block(theme) if not any(s in line for s in search)]
    assert len(expected) == len(block(theme)) - 6, "the theme's search scripts changed"
    assert block(ours) == expected, (
        "_templates/layout.html is out of step with the theme's extrahead block: "
        f"copy it again without the search scripts\n{expected}")


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


def test_an_equation_too_wide_for_a_phone_scrolls_with_a_cue(server, browser):
    """An equation that cannot fit (none of the book's: the layout checks
    above fail on one) scrolls inside its own box, which a keyboard
    reaches, with a shadow on each side where more maths is hidden, and its
    number on a line of its own below it. The equation is added to the
    page's HTML before _static/maths.js typesets it, as the build writes
    one."""
    page = "book/part2-pytorch/autograd-basics.html"
    tex = " + ".join(f"x_{{{i}}}^2" for i in range(40))
    wide = (f'<div class="math notranslate nohighlight" id="equation-wide">'
            f'<span class="eqno">(99)</span>\\[{tex}\\]</div>')
    measure = r"""
    () => {
      const eq = document.querySelector("#equation-wide");
      const display = eq.querySelector(".katex-display");
      const number = eq.querySelector(".eqno").getBoundingClientRect();
      const box = display.getBoundingClientRect();
      return {scrolls: display.scrollWidth > display.clientWidth + 1,
              fitsColumn: box.right <= eq.getBoundingClientRect().right + 1,
              tabindex: display.getAttribute("tabindex"),
              shadow: getComputedStyle(display).backgroundImage,
              numberBelow: number.top >= box.bottom - 1};
    }
    """
    for theme in bp.THEMES:
        context = bp.new_context(browser, theme)
        context.set_default_timeout(60_000)

        def add_equation(route):
            response = route.fetch()
            article = '<article class="bd-article">'
            body = response.text().replace(article, article + wide, 1)
            route.fulfill(response=response, body=body)

        context.route(f"**/{page}", add_equation)
        browser_page = context.new_page()
        try:
            browser_page.set_viewport_size(bp.PHONE)
            browser_page.goto(server.base + page, wait_until="load")
            browser_page.evaluate("() => document.fonts.ready.then(() => null)")
            found = browser_page.evaluate(measure)
        finally:
            context.close()
        assert found["scrolls"] and found["fitsColumn"], (theme, found)
        assert found["tabindex"] == "0", (theme, found)
        assert found["shadow"].count("radial-gradient") == 2, (theme, found)
        assert found["numberBelow"], (theme, found)
