"""Read the built book in a real browser: headless Chromium, offline, via Playwright.

``tests/test_browser.py`` uses this to test every page of ``_build/html``.
It also runs on its own, against any built book, to measure page weights or
take screenshots::

    python tests/browser_pages.py _build/html                   # check every page
    python tests/browser_pages.py _build/html --screenshots /tmp/shots \\
        book/part2-pytorch/autograd-basics.html

The book is served from the folder by a local HTTP server on 127.0.0.1 (a
random port). Every request to any other host is blocked and recorded: the
book must render from the built folder alone. Launch buttons (Binder, Colab)
are links, so nothing is requested from those sites until a reader clicks.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import shutil
import statistics
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# The browser: $CHROMIUM_PATH, else Playwright's own Chromium if it was
# installed, else the first of these on PATH (Debian's is ``chromium``).
BROWSERS_ON_PATH = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
GET_A_BROWSER = ("apt-get install chromium (or python -m playwright install chromium, "
                 "or CHROMIUM_PATH=/path/to/chrome)")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-first-run",
    "--no-default-browser-check", "--metrics-recording-only", "--mute-audio",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
THEMES = ("light", "dark")
SERIOUS = ("serious", "critical")  # axe-core impacts that fail a page
VIEWPORT = {"width": 1280, "height": 900}

# Pages that are not part of the reading: Sphinx's root index.html only
# redirects to the first page (book/intro.html, which is tested itself).
NOT_PAGES = {"index.html"}
NOT_PAGE_FOLDERS = {"_static", "_sources", "_images", "reports", "_downloads"}


# --- Serving ------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serve the build folder; remember every answered request and its status."""

    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        pass

    def log_request(self, code="-", size="-"):
        self.server.answered.append((int(code) if str(code).isdigit() else 0, self.path))


class BookServer:
    """``python -m http.server`` for one folder, on 127.0.0.1, in a thread."""

    def __init__(self, root: Path):
        self.root = Path(root)
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.answered = []
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> BookServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def take_errors(self) -> list[str]:
        """Requests answered with 4xx/5xx since the last call (the browser's own too,
        such as a /favicon.ico that a page never asks for in its HTML)."""
        answered, self.httpd.answered[:] = list(self.httpd.answered), []
        return [f"HTTP {code} for {path}" for code, path in answered if code >= 400]


# --- The pages ----------------------------------------------------------------


def html_pages(html: Path) -> list[str]:
    """Every reader-facing HTML page of the built book, relative to ``html``.

    The book's own pages, plus Sphinx's search page (the search box leads
    there) and general index (linked from every page's <head>).
    """
    pages = []
    for path in sorted(html.rglob("*.html")):
        relative = path.relative_to(html)
        if relative.parts[0] in NOT_PAGE_FOLDERS or str(relative) in NOT_PAGES:
            continue
        pages.append(relative.as_posix())
    return pages


def source_of(page: str, source_root: Path) -> Path | None:
    source = source_root / Path(page).with_suffix(".md")
    return source if source.exists() else None


def expected_errors(source: Path | None) -> list[str]:
    """Exception types the page's shown ``raises-exception`` cells name, in order."""
    if source is None:
        return []
    import jupytext

    notebook = jupytext.read(source)
    names = []
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code" or "raises-exception" not in tags:
            continue
        if {"remove-output", "remove-cell"} & set(tags):
            continue
        names.append(str(cell.metadata.get("expect_error", "")))
    return names


# --- What is checked in the browser -------------------------------------------

# Runs in the page once it has loaded: KaTeX has typeset the maths
# (_static/maths.js, on DOMContentLoaded).
INSPECT_JS = r"""
async () => {
  await document.fonts.ready;
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  // Prose as a reader sees it: everything but code, scripts and typeset maths.
  const clone = document.body.cloneNode(true);
  clone.querySelectorAll(
    "pre, code, script, style, noscript, textarea, template, .katex"
  ).forEach((el) => el.remove());
  const maths = [...document.querySelectorAll(".math")];
  return {
    theme: document.documentElement.dataset.theme || "",
    mode: document.documentElement.dataset.mode || "",
    katex: typeof katex !== "undefined",
    katexVersion: (typeof katex !== "undefined" && katex.version) || "",
    maths: maths.length,
    untypeset: maths.filter((el) => !el.querySelector(".katex"))
                    .map((el) => el.textContent.trim().slice(0, 80)),
    mathErrors: [...document.querySelectorAll(".katex-error")]
                    .map((el) => (el.getAttribute("title") || el.textContent).slice(0, 120)),
    prose: clone.textContent,
    images: [...document.querySelectorAll("img")].map((img) => ({
      src: img.getAttribute("src") || "",
      inArticle: !!img.closest("article"),
      // A cell's plot: it must be a figure with a caption (mystnb: figure: caption:).
      output: !!img.closest(".cell_output"),
      caption: (img.closest("figure")?.querySelector("figcaption")?.textContent || "").trim(),
      alt: (img.getAttribute("alt") || "").trim(),
      loaded: img.complete && img.naturalWidth > 0,
      visible: visible(img),
    })),
    tracebacks: [...document.querySelectorAll("div.output.traceback")]
                    .map((el) => el.innerText.trim()),
    // Without an icon of its own a page makes the browser ask for /favicon.ico.
    // (The check's own request is marked, and not counted in the page weight.)
    icons: await Promise.all([...document.querySelectorAll("link[rel~=icon]")].map(
      (link) => fetch(Object.assign(new URL(link.href), {search: "browser-test"}), {cache: "no-store"}).then(
        (r) => [link.getAttribute("href"), r.status], () => [link.getAttribute("href"), 0]))),
    scripts: [...document.querySelectorAll("script[src]")].reduce((counts, el) => {
      const url = el.src.split("?")[0];
      counts[url] = (counts[url] || 0) + 1;
      return counts;
    }, {}),
  };
}
"""

# Decoded size of the page and of everything it loaded (Resource Timing).
WEIGHT_JS = """
() => {
  const navigation = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource")
                               .filter((r) => !r.name.includes("?browser-test"));
  return {
    weight: (navigation ? navigation.decodedBodySize : 0)
            + resources.reduce((sum, r) => sum + (r.decodedBodySize || 0), 0),
    requests: resources.length + 1,
  };
}
"""

# What a reader sees of the page's layout, run at 1280 px and again at 400 px
# once everything folded (hidden cells, solutions) has been opened, so that
# what a reader can unfold is measured too.
LAYOUT_JS = r"""
async () => {
  // After a change of width the theme slides its sidebars away: let it finish.
  await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  await Promise.all(document.getAnimations().map((a) => a.finished.catch(() => null)));
  document.querySelectorAll("details").forEach((el) => { el.open = true; });
  document.querySelectorAll(".toggle-hidden").forEach((el) => el.classList.remove("toggle-hidden"));
  const short = (text) => text.replace(/\s+/g, " ").trim().slice(0, 70);
  const overflows = (el) => el.scrollWidth > el.clientWidth + 1;
  const shown = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.right > 0 && r.left < window.innerWidth
      && el.checkVisibility({opacityProperty: true, visibilityProperty: true});
  };
  // Display equations that do not fit their column (they would scroll in their box).
  const wideEquations = [...document.querySelectorAll("div.math")]
    .filter((eq) => overflows(eq) || [...eq.children].some(overflows))
    .map((eq) => {
      const number = (eq.querySelector(".eqno")?.textContent || "").replace("#", "").trim();
      const tex = eq.querySelector("annotation")?.textContent || eq.textContent;
      return `${number} ${short(tex)}`.trim();
    });
  // Equation numbers drawn over their equation's maths: the number's box
  // against each run of typeset maths (the children of .katex-html), as far as the
  // equation's own box shows it (a scrolling equation clips the rest).
  const intersect = (r, s) => ({left: Math.max(r.left, s.left), right: Math.min(r.right, s.right),
                                 top: Math.max(r.top, s.top), bottom: Math.min(r.bottom, s.bottom)});
  const meets = (r) => r.right - r.left > 1 && r.bottom - r.top > 1;
  const coveredEquations = [...document.querySelectorAll("div.math")].filter((eq) => {
    const number = eq.querySelector(":scope > .eqno");
    const display = eq.querySelector(":scope > .katex-display");
    if (!number || !display || !shown(number)) return false;
    const box = display.getBoundingClientRect(), tag = number.getBoundingClientRect();
    return [...display.querySelectorAll(".katex-html > *")].some(
      (run) => meets(intersect(intersect(run.getBoundingClientRect(), box), tag)));
  }).map((eq) => (eq.querySelector(".eqno")?.textContent || "").replace("#", "").trim());
  // Code boxes (cells, and code blocks such as skeletons) with a scroll bar.
  const codeBoxes = [...document.querySelectorAll("article div.cell_input pre, article div.highlight pre")]
    .filter((pre) => !pre.closest("div.cell_output"));
  const scrollingCode = codeBoxes.filter(overflows).map((pre) => {
    const lines = pre.textContent.split("\n");
    const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
    return `${longest.length} characters: ${short(longest)}`;
  });
  const glue = [...document.querySelectorAll("div.cell_input")]
    .filter((cell) => /\bglue\(/.test(cell.textContent))
    .map((cell) => short(cell.textContent.split("\n").find((l) => l.includes("glue(")) || ""));
  // The header's and the sidebar's controls: none drawn over another.
  const controls = [...document.querySelectorAll(
    ".bd-header button, .bd-header a, .bd-header-article button, .bd-header-article a, "
    + ".bd-sidebar-primary .navbar-brand, .bd-sidebar-primary .search-button-field, "
    + ".bd-sidebar-primary nav.bd-links, .bd-sidebar-secondary .page-toc")].filter(shown);
  const name = (el) => {
    const label = el.getAttribute("aria-label") || el.getAttribute("title") || short(el.textContent) || "";
    return `<${el.tagName.toLowerCase()}${el.className ? " class=" + JSON.stringify(String(el.className)) : ""}> ${label.slice(0, 30)}`.trim();
  };
  const overlaps = [];
  for (let i = 0; i < controls.length; i++) {
    for (let j = i + 1; j < controls.length; j++) {
      const a = controls[i], b = controls[j];
      if (a.contains(b) || b.contains(a)) continue;
      const r = a.getBoundingClientRect(), s = b.getBoundingClientRect();
      const w = Math.min(r.right, s.right) - Math.max(r.left, s.left);
      const h = Math.min(r.bottom, s.bottom) - Math.max(r.top, s.top);
      if (w > 1 && h > 1) overlaps.push(`${name(a)} and ${name(b)}`);
    }
  }
  const searches = [...document.querySelectorAll(".search-button-field, .search-button")].filter(shown);
  return {
    width: window.innerWidth,
    pageWidth: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
    wideEquations, coveredEquations, scrollingCode, glue, overlaps,
    searchFields: searches.map(name),
  };
}
"""

# Every glyph the page draws with the Font Awesome faces that _static/icons.css
# replaces by cut-down fonts (vendor/update_icons.py).
ICONS_JS = r"""
() => {
  const found = new Set();
  for (const el of document.querySelectorAll("*")) {
    for (const pseudo of ["::before", "::after"]) {
      const style = getComputedStyle(el, pseudo);
      if (!/Font Awesome/.test(style.fontFamily)) continue;
      const match = style.content.match(/^"(.+)"$/u);
      if (!match) continue;
      for (const ch of match[1]) {
        const code = ch.codePointAt(0);
        if (code >= 0xe000) found.add(JSON.stringify([style.fontFamily.replace(/"/g, ""), style.fontWeight,
                                             code, `${el.tagName.toLowerCase()}.${[...el.classList].join(".")}`]));
      }
    }
  }
  return [...found].map((item) => JSON.parse(item));
}
"""
# The faces _static/icons.css replaces, and their files under _static/icons/.
CUT_ICON_FONTS = {("Font Awesome 6 Free", "900"): "fa-solid-900.woff",
                  ("Font Awesome 6 Brands", "400"): "fa-brands-400.woff"}
PHONE = {"width": 400, "height": 800}

RAW_TEX = [
    (re.compile(r"\$\$"), "$$"),
    (re.compile(r"\\[()\[\]]"), r"\( \) \[ \]"),
    (re.compile(r"\\(?:begin|end)\{"), r"\begin/\end"),
    (re.compile(r"\\[A-Za-z]{2,}"), "a TeX command"),
    (re.compile(r"(?<![\w$])\$[^$\s][^$\n]{0,200}?\$(?![\w$])"), "$...$"),
]
# An error shown on purpose starts with "ExceptionType: message" (or only
# "ExceptionType" when the exception has no message).
SHORT_ERROR = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(: \S.*)?$")
LONG_ERROR_SIGNS = ("Traceback (most recent call last)", 'File "', "Cell In[", "site-packages", "----> ")
# An error's message may carry data (gradcheck prints the two Jacobians), but
# no traceback: its first line is `ExceptionType: message`, and it is short.
MAX_ERROR_LINES = 12
IMAGE_FILE = re.compile(r"\.(png|svg|jpe?g|gif|webp)$", re.I)
MIN_ALT_WORDS = 5  # a figure's alt text describes it; a logo's may be two words


@dataclass
class PageReport:
    page: str
    theme: str
    weight: int = 0
    requests: int = 0
    maths: int = 0
    katex_version: str = ""
    problems: list[str] = field(default_factory=list)


def first_few(what: str, items: list[str], shown: int = 5) -> list[str]:
    """One problem per item, but at most ``shown`` of them and a count."""
    lines = [f"{what}: {item}" for item in items[:shown]]
    if len(items) > shown:
        lines.append(f"{what}: ... {len(items) - shown} more")
    return lines


def raw_tex(prose: str) -> list[str]:
    found = []
    for pattern, what in RAW_TEX:
        for match in pattern.finditer(prose):
            start = max(0, match.start() - 30)
            found.append(f"{what}: ...{' '.join(prose[start:match.end() + 30].split())}...")
    return found


def error_problems(tracebacks: list[str], expected: list[str]) -> list[str]:
    problems = []
    shown = []
    for text in tracebacks:
        lines = text.splitlines()
        match = SHORT_ERROR.match(lines[0]) if 0 < len(lines) <= MAX_ERROR_LINES else None
        if match is None or any(sign in text for sign in LONG_ERROR_SIGNS):
            problems.append(
                "an error shown on purpose does not start with an 'ExceptionType: message' line, "
                "or carries a traceback:\n    "
                + "\n    ".join(lines[:8]) + ("\n    ..." if len(lines) > 8 else "")
            )
        shown.append(match.group("type").rsplit(".", 1)[-1] if match else "?")
    if [e.rsplit(".", 1)[-1] for e in expected] != shown:
        problems.append(
            f"the page shows the errors {shown}, its raises-exception cells name {expected}"
        )
    return problems


# The themes differ in their colours only, so the dark theme is checked for
# the rules that read colours; the light theme for every rule. (axe's
# colour-contrast rule takes most of its time: 4 s of 5 on a long page.)
COLOUR_RULES = ["color-contrast", "link-in-text-block"]


def axe_options(theme: str) -> dict:
    options = {"resultTypes": ["violations"]}
    if theme != THEMES[0]:
        options["runOnly"] = {"type": "rule", "values": COLOUR_RULES}
    return options


def check_page(context, server: BookServer, page: str, theme: str,
               expected: list[str] | None = None, axe=None,
               screenshot: Path | None = None, scroll_to: str | None = None) -> PageReport:
    """Load one page in a fresh browser context (so nothing comes from a cache)
    and return what is wrong with it."""
    report = PageReport(page, theme)
    problems = report.problems
    blocked: list[str] = []

    def route(route):
        host = urlsplit(route.request.url).hostname or ""
        if host in LOOPBACK:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("blockedbyclient")

    context.route("**/*", route)
    browser_page = context.new_page()
    console_errors: list[str] = []
    failed: list[str] = []
    browser_page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    browser_page.on("pageerror", lambda e: console_errors.append(f"uncaught {e}"))
    browser_page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
    browser_page.on("response", lambda r: failed.append(f"{r.url} (HTTP {r.status})")
                    if r.status >= 400 else None)
    server.take_errors()
    try:
        browser_page.goto(server.base + page, wait_until="load")
        found = browser_page.evaluate(INSPECT_JS)
        browser_page.wait_for_load_state("networkidle")
        # Resources fetched late (fonts) count too: measure again.
        found.update(browser_page.evaluate(WEIGHT_JS))
        # What the page did is recorded; what axe-core does next is the test's
        # own doing (it fetches stylesheets again, resolving @import against
        # the page instead of the stylesheet, which gives spurious 404s).
        page_events = (list(blocked), list(failed), list(console_errors), server.take_errors())
        if axe is not None:
            violations = axe.run(browser_page, options=axe_options(theme)).response["violations"]
            for violation in violations:
                if violation.get("impact") in SERIOUS:
                    targets = [", ".join(map(str, node["target"])) for node in violation["nodes"]]
                    problems.append(
                        f"axe {violation['impact']} {violation['id']}: {violation['help']} "
                        f"({len(targets)}x: {'; '.join(targets[:5])})"
                    )
        if screenshot is not None:
            if scroll_to:
                target = browser_page.locator(scroll_to).first
                if target.count():
                    target.scroll_into_view_if_needed()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            browser_page.screenshot(path=str(screenshot), full_page=False)
        # Last, as they unfold what is folded: the layout on a desk and a phone.
        browser_page.evaluate("() => window.scrollTo(0, 0)")
        desk = browser_page.evaluate(LAYOUT_JS)
        icons = browser_page.evaluate(ICONS_JS)
        browser_page.set_viewport_size(PHONE)
        phone = browser_page.evaluate(LAYOUT_JS)
    finally:
        browser_page.close()

    report.weight, report.requests = found["weight"], found["requests"]
    report.maths, report.katex_version = found["maths"], found["katexVersion"]
    blocked, failed, console_errors, server_errors = page_events
    problems.extend(f"request to another host blocked: {url}" for url in sorted(set(blocked)))
    problems.extend(f"failed request: {entry}" for entry in failed
                    if not any(entry.startswith(url) for url in blocked))
    problems.extend(f"server answered {entry}" for entry in server_errors)
    problems.extend(f"console error: {text}" for text in console_errors
                    if not (blocked and "ERR_BLOCKED_BY_CLIENT" in text))
    if not found["icons"]:
        problems.append("no <link rel=icon>: the browser asks for /favicon.ico")
    problems.extend(f"icon {href} answered {status}" for href, status in found["icons"] if status != 200)
    problems.extend(f"script loaded {count} times: {url}"
                    for url, count in found["scripts"].items() if count > 1)
    if (found["theme"], found["mode"]) != (theme, "auto"):
        problems.append(f"the page shows the {found['theme']!r} theme in mode {found['mode']!r}; "
                        f"a first visit with a {theme} system preference should show {theme!r} in mode 'auto'")
    if found["maths"] and not found["katex"]:
        problems.append(f"{found['maths']} maths elements but KaTeX did not load")
    vendored = server.root / "_static" / "katex" / "VERSION"
    if found["katex"] and vendored.exists() and found["katexVersion"] != vendored.read_text().strip():
        problems.append(f"KaTeX {found['katexVersion']} typeset the page, not the book's "
                        f"{vendored.read_text().strip()} (vendor/html/_static/katex/)")
    problems.extend(first_few("maths not typeset", [repr(t) for t in found["untypeset"]]))
    problems.extend(first_few("KaTeX cannot typeset", [repr(t) for t in found["mathErrors"]]))
    problems.extend(first_few("raw TeX visible in the text", raw_tex(found["prose"])))
    for image in found["images"]:
        alt, src = image["alt"], image["src"]
        if not alt:
            problems.append(f"image without alt text: {src}")
        elif alt == src or IMAGE_FILE.search(alt):
            # Docutils' fallback when a figure has no `image: alt:`.
            problems.append(f"image whose alt text is its file name: {src}")
        elif image["inArticle"] and len(alt.split()) < MIN_ALT_WORDS:
            problems.append(f"figure alt text too short to say what it shows ({alt!r}): {src}")
        if image["output"] and not image["caption"]:
            problems.append(f"a cell's image is not a figure with a caption: {src}")
        if image["visible"] and not image["loaded"]:
            problems.append(f"image did not load: {image['src']}")
    if expected is not None:
        problems.extend(error_problems(found["tracebacks"], expected))
    problems.extend(layout_problems(desk, phone))
    problems.extend(icon_problems(icons, server.root))
    return report


def layout_problems(desk: dict, phone: dict) -> list[str]:
    """What LAYOUT_JS found at the desk's width (code, glue) and at both
    widths (display equations and their numbers, the header and sidebar,
    the page's width)."""
    at = f"at {desk['width']} px"
    problems = []
    for layout in (desk, phone):
        width = layout["width"]
        problems += first_few(f"display equation wider than its column at {width} px (split "
                              "it over lines with aligned)", layout["wideEquations"])
        problems += first_few(f"equation number drawn over its equation at {width} px",
                              layout["coveredEquations"])
    problems += first_few(f"code box with a horizontal scroll bar {at} (79 characters "
                          "fit)", desk["scrollingCode"])
    problems += first_few("glue( shown in a code cell (glue in a cell tagged remove-cell)",
                          desk["glue"])
    for layout in (desk, phone):
        width = layout["width"]
        problems += first_few(f"drawn over each other in the header or sidebar at {width} px",
                              layout["overlaps"])
        if len(layout["searchFields"]) > 1:
            problems.append(f"{len(layout['searchFields'])} search fields shown at {width} px: "
                            + "; ".join(layout["searchFields"]))
    if phone["pageWidth"] > phone["width"]:
        problems.append(f"the page is {phone['pageWidth']} px wide on a {phone['width']} px "
                        "screen: it scrolls sideways")
    return problems


@functools.lru_cache(maxsize=None)
def font_codes(path: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    return frozenset(TTFont(str(path)).getBestCmap()) if path.exists() else frozenset()


def icon_problems(icons: list, html: Path) -> list[str]:
    """Icons drawn with a cut-down Font Awesome face that lacks their glyph."""
    missing = {}
    for family, weight, code, element in icons:
        font = CUT_ICON_FONTS.get((family, str(weight)))
        if font and code not in font_codes(html / "_static" / "icons" / font):
            missing.setdefault(f"U+{code:X} of {font}", element)
    return [f"icon {glyph} missing (drawn by {element}): run `python vendor/update_icons.py`"
            for glyph, element in sorted(missing.items())]


def weight_record(html: Path, page: str, theme: str) -> Path:
    """Where a page test leaves the weight it measured (``_build/page-weights/``)."""
    return html.parent / "page-weights" / f"{page.replace('/', '--')}-{theme}.json"


def record_weight(html: Path, report: PageReport) -> None:
    path = weight_record(html, report.page, report.theme)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"built": (html / report.page).stat().st_mtime,
                                "weight": report.weight, "requests": report.requests}))


def recorded_weight(html: Path, page: str, theme: str) -> PageReport | None:
    """The weight a page test measured on this build of the page, if any."""
    path = weight_record(html, page, theme)
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if found.get("built") != (html / page).stat().st_mtime:
        return None
    return PageReport(page, theme, found["weight"], found["requests"])


def measure_weight(context, server: BookServer, page: str) -> PageReport:
    """Load one page and add up what it decoded (nothing else is checked)."""
    browser_page = context.new_page()
    try:
        browser_page.goto(server.base + page, wait_until="load")
        browser_page.evaluate("() => document.fonts.ready.then(() => null)")
        browser_page.wait_for_load_state("networkidle")
        found = browser_page.evaluate(WEIGHT_JS)
    finally:
        browser_page.close()
    return PageReport(page, "light", found["weight"], found["requests"])


def new_context(browser, theme: str):
    """A fresh browser profile whose system preference is ``theme``: a reader's
    first visit, with nothing in the cache or in localStorage, where the book
    must follow the system's light or dark preference."""
    return browser.new_context(viewport=VIEWPORT, color_scheme=theme, service_workers="block")


@functools.cache
def find_browser() -> tuple[str | None, str]:
    """(the browser's path, how it was found), or (None, why there is none)."""
    named = os.environ.get("CHROMIUM_PATH")
    if named:
        if Path(named).is_file():
            return named, "CHROMIUM_PATH"
        return None, f"CHROMIUM_PATH={named} does not exist"
    try:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as playwright:
            own = playwright.chromium.executable_path
        if own and Path(own).is_file():
            return own, "Playwright's own Chromium"
    except Exception:  # noqa: BLE001 - no driver, no browser: look on PATH
        pass
    for name in BROWSERS_ON_PATH:
        found = shutil.which(name)
        if found:
            return found, f"{name} on PATH"
    return None, "no Chromium found (CHROMIUM_PATH, Playwright's own, " + \
        "/".join(BROWSERS_ON_PATH) + " on PATH)"


def in_ci() -> bool:
    """CI sets CI=true: there, what a test needs is required, not optional."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(what: str) -> None:
    """Skip the test (one line in pytest's summary: what is missing and the
    command that brings it), or, with CI=true, fail it."""
    import pytest

    if in_ci():
        pytest.fail(f"{what} (required with CI=true)", pytrace=False)
    MISSING.add(what)
    pytest.skip(what)


MISSING: set[str] = set()  # the reasons ``missing`` skipped a test for


def launch(playwright):
    path, why = find_browser()
    if path is None:
        raise RuntimeError(f"{why}: {GET_A_BROWSER}")
    return playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)


def median_weight(reports: list[PageReport]) -> float:
    return statistics.median(r.weight for r in reports) if reports else 0.0


def weights_table(reports: list[PageReport]) -> str:
    by_page: dict[str, dict[str, PageReport]] = {}
    for report in reports:
        by_page.setdefault(report.page, {})[report.theme] = report
    lines = [f"{'page':<52} {'light KB':>9} {'dark KB':>9} {'requests':>8}"]
    for page, themes in sorted(by_page.items()):
        cells = [f"{themes[t].weight / 1024:9.0f}" if t in themes else f"{'-':>9}" for t in THEMES]
        requests = max(r.requests for r in themes.values())
        lines.append(f"{page:<52} {' '.join(cells)} {requests:>8}")
    lines.append(f"median decoded page weight: {median_weight(reports) / 1024:.0f} KB "
                 f"over {len(reports)} page loads")
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After a run of tests/test_browser.py: every page's decoded weight, in the
    terminal and in _build/page-weights.json (imported by tests/conftest.py)."""
    reports = []
    for outcome in terminalreporter.stats.values():
        for test_report in outcome:
            if getattr(test_report, "when", None) != "call":
                continue
            for name, value in getattr(test_report, "user_properties", []):
                if name == "page_weight":
                    reports.append(PageReport(value["page"], value["theme"], value["weight"],
                                              value["requests"]))
    if not reports:
        return
    build = Path(__file__).resolve().parent.parent / "_build"
    build.mkdir(exist_ok=True)
    (build / "page-weights.json").write_text(json.dumps(
        {"median_bytes": median_weight(reports),
         "pages": [{"page": r.page, "theme": r.theme, "bytes": r.weight, "requests": r.requests}
                   for r in sorted(reports, key=lambda r: (r.page, r.theme))]}, indent=1))
    terminalreporter.section("decoded page weights (tests/test_browser.py)")
    terminalreporter.write_line(weights_table(reports))
    terminalreporter.write_line(f"written to {build / 'page-weights.json'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="the built book, e.g. _build/html")
    parser.add_argument("pages", nargs="*", help="pages to load (default: all)")
    parser.add_argument("--source", type=Path, default=None,
                        help="the book's source folder (default: two levels above HTML)")
    parser.add_argument("--screenshots", type=Path, default=None, help="save a PNG of each page here")
    parser.add_argument("--scroll-to", default=None,
                        help="CSS selector to scroll into view before the screenshot, e.g. figure")
    parser.add_argument("--no-axe", action="store_true", help="skip the axe-core checks")
    parser.add_argument("--json", type=Path, default=None, help="write the reports here")
    args = parser.parse_intermixed_args(argv)

    from playwright.sync_api import sync_playwright

    html = args.html.resolve()
    source_root = (args.source or html.parent.parent).resolve()
    axe = None
    if not args.no_axe:
        from axe_playwright_python.sync_playwright import Axe
        axe = Axe()
    reports = []
    with BookServer(html) as server, sync_playwright() as playwright:
        browser = launch(playwright)
        for theme in THEMES:
            for page in args.pages or html_pages(html):
                context = new_context(browser, theme)
                shot = None
                if args.screenshots:
                    shot = args.screenshots / f"{Path(page).stem}-{theme}.png"
                try:
                    report = check_page(context, server, page, theme,
                                        expected_errors(source_of(page, source_root)), axe, shot,
                                        args.scroll_to)
                finally:
                    context.close()
                reports.append(report)
                status = "ok" if not report.problems else f"{len(report.problems)} problems"
                print(f"{theme:5} {page:52} {report.weight / 1024:7.0f} KB  {status}")
                for problem in report.problems:
                    print(f"      - {problem}")
        browser.close()
    print(weights_table(reports))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=1))
    return 1 if any(r.problems for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
