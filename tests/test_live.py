"""Live cells (tools/live.py, _static/live.js): Part I runs in the browser.

Which cells are live is a rule over each page's code (``live_plan``), tested
here on small notebooks. The built book is then read in Debian's Chromium,
served on 127.0.0.1 with every other host blocked (tests/browser_pages.py),
and its live cells are clicked:

- every Part I page has live cells, and running each of them in the
  browser prints what the build printed (the error's type, for a cell that
  fails on purpose), with no request to another host;
- on forward-mode-dual-numbers: the first cell's Run shows its output; the
  time from the first click to the first result, and of the next run, are
  measured and printed (at most 5 s and 0.5 s on a quiet machine); an edited
  cell prints its new result; an error is one ``Type: message`` line; a
  self-check judges an edited, wrong answer as wrong; Reset puts the
  original code back; Stop ends a run that does not end;
- every exercise skeleton that is live fails its check as given, and passes
  it once filled in with the solution;
- a page without live cells, and a live page before its first Run, request
  nothing of Pyodide;
- a book built without npm builds, says that live cells are off, and has no
  Run button.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest

import browser_pages as bp
from book_pages import PAGE_FRONT_MATTER, build, small_book, warnings
from tools import live
from tools.pages import ROOT, notebook_pages

PART_ONE = [p for p in notebook_pages() if p.parent.name == "part1-from-scratch"]
DUAL = "book/part1-from-scratch/forward-mode-dual-numbers.html"
FIRST_RESULT, NEXT_RESULT = 5.0, 0.5  # seconds, on a quiet machine
DONE = re.compile(r"Ran in|Not run|Stopped|not available|restarted")


def html_page(path: Path) -> str:
    return path.relative_to(ROOT).with_suffix(".html").as_posix()


# --- The rule ---------------------------------------------------------------


def notebook(*cells: str | tuple[str, list[str]]):
    made = []
    for cell in cells:
        source, tags = cell if isinstance(cell, tuple) else (cell, [])
        made.append(nbformat.v4.new_code_cell(source, metadata={"tags": tags}))
    return nbformat.v4.new_notebook(cells=made)


def live_sources(book) -> list[str]:
    plan = live.live_plan(book)
    return [book.cells[index].source for index in plan.cells]


def test_pure_python_cells_are_live_and_the_rest_is_not():
    book = notebook(
        "import math\nimport torch\nfrom types import SimpleNamespace",
        "def f(x):\n    return math.sin(x) * scale",  # scale: never bound
        "scale = 2.0\ndef g(x):\n    return math.sin(x) * scale",
        "t = torch.tensor(1.0)",
        "print(g(0.5), t)",  # t comes from PyTorch
        "y = g(0.5)",
        ("%timeit g(0.5)", []),  # a magic: not plain Python
        ("elapsed = g(0.5)", ["timing"]),
        ("glue('y', y)", ["remove-cell"]),
        "y = t.item()",  # a PyTorch cell rebinds y ...
        "print(y)",  # ... so this cell is not live
        ("import json\nprint(json.dumps([g(0.1)]))", ["hide-input"]),
    )
    plan = live.live_plan(book)
    assert live_sources(book) == [
        "scale = 2.0\ndef g(x):\n    return math.sin(x) * scale",
        "y = g(0.5)",
        "import json\nprint(json.dumps([g(0.1)]))",
    ]
    assert plan.prelude == ["import math", "from types import SimpleNamespace"]
    assert [hidden for hidden in plan.cells.values()] == [False, False, True]
    assert "reads scale" in plan.reasons[1]
    assert "reads torch" in plan.reasons[3]
    assert "imports torch" in plan.reasons[0]
    assert "tagged timing" in plan.reasons[7]
    assert "reads y" in plan.reasons[10]


def test_names_read_by_functions_and_before_binding_count():
    book = notebook(
        "import numpy as np",
        "def uses_np():\n    return np.pi",  # read when called
        "x = 1.0\nx = x + 1",  # x is bound before it is read
        "total = total + 1",  # read before it is bound
        "def counter():\n    global calls\n    calls = 1",
        "print(calls)",  # bound by the live cell above
        "import subprocess",  # no processes in a browser
        "[k * x for k in range(3)]",
    )
    assert live_sources(book) == [
        "x = 1.0\nx = x + 1",
        "def counter():\n    global calls\n    calls = 1",
        "print(calls)",
        "[k * x for k in range(3)]",
    ]


def test_only_a_book_with_live_pages_fetches_pyodide(tmp_path):
    (tmp_path / "book").mkdir()
    page = tmp_path / "book" / "page.md"
    page.write_text(PAGE_FRONT_MATTER + "# A page\n")
    assert not live.any_live_page(tmp_path)
    page.write_text(PAGE_FRONT_MATTER.replace("---\n", "---\nlive: true\n", 1)
                    + "# A page\n")
    assert live.any_live_page(tmp_path)
    assert live.any_live_page(ROOT)  # Part I


def test_fetch_checks_the_pinned_integrity(tmp_path, monkeypatch):
    """A tarball whose hash is not the pinned one is refused."""
    fake = tmp_path / "npm"
    fake.write_text(textwrap.dedent("""\
        #!/bin/sh
        # npm pack NAME ... --pack-destination DIR
        for destination; do :; done
        echo 'not pyodide' > "$destination/pyodide-0.0.0.tgz"
        echo '[]'
        """))
    fake.chmod(0o755)
    monkeypatch.setenv("BOOK_NPM", str(fake))
    folder, why = live.fetch(tmp_path / "cache")
    assert folder is None and "not the pinned" in why
    monkeypatch.setenv("BOOK_NPM", str(tmp_path / "no-npm-here"))
    folder, why = live.fetch(tmp_path / "cache")
    assert folder is None and "was not found" in why


def test_a_book_built_without_npm_has_no_live_cells(tmp_path, monkeypatch):
    page = PAGE_FRONT_MATTER.replace("---\n", "---\nlive: true\n", 1)
    page += "(live-page)=\n# A live page\n\n```{code-cell} ipython3\nprint(1 + 1)\n```\n"
    book = small_book(tmp_path / "book", {"live-page.md": page})
    monkeypatch.setenv("BOOK_NPM", str(tmp_path / "no-npm-here"))
    returncode, log = build(book)
    assert returncode == 0 and not warnings(log), log[-3000:]
    assert "[live] live cells are off: " in log and "was not found" in log
    html = (book / "_build/html/book/live-page.html").read_text()
    assert "live-cell" not in html and "live.js" not in html
    assert not (book / "_build/html/_static/pyodide").exists()


# --- In the browser ---------------------------------------------------------


@pytest.fixture(scope="session")
def live_html(built_book, html) -> Path:
    """The built book with live cells on: the build fetched Pyodide and
    copied its core files into the site."""
    off = [line for line in built_book.log.splitlines()
           if "live cells are off" in line]
    if off:
        bp.missing("live-cell tests need Pyodide, which the build fetches "
                   "with npm: apt-get install nodejs npm, then build again ("
                   + off[0].split("live cells are off: ", 1)[-1].strip() + ")")
    for name in live.CORE_FILES:
        assert (html / "_static" / live.STATIC / name).is_file()
    return html


@pytest.fixture(scope="session")
def server(live_html, server):
    """The book served (tests/conftest.py), with live cells on."""
    return server


class Reader:
    """One page in a fresh browser profile; requests to other hosts are
    blocked and recorded, and so is every URL the page asks for."""

    def __init__(self, browser, server, page: str, theme: str = "light"):
        self.context = bp.new_context(browser, theme)
        self.blocked, self.requested, self.errors = [], [], []

        def route(route):
            url = route.request.url
            self.requested.append(url)
            if (urlsplit(url).hostname or "") in bp.LOOPBACK:
                route.continue_()
            else:
                self.blocked.append(url)
                route.abort("blockedbyclient")

        self.context.route("**/*", route)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(server.base + page, wait_until="load")
        # Solutions are folded away: open them, as a reader would.
        self.page.evaluate(
            "document.querySelectorAll('.admonition.toggle-hidden > .admonition-title')"
            ".forEach(title => title.click())")

    def close(self):
        self.context.close()

    def numbers(self) -> list[int]:
        """The numbers of the live cells with a Run button, in page order."""
        return self.page.evaluate(
            "[...document.querySelectorAll('.live-cell')]"
            ".filter(el => el.nextElementSibling?.classList.contains('live-controls')"
            " || el.querySelector(':scope > .live-controls'))"
            ".map(el => +[...el.classList].find(c => /^live-cell-\\d+$/.test(c)).slice(10))")

    def skeletons(self) -> list[dict]:
        """The page's live exercise skeletons (tools/live.py's entries)."""
        return self.page.evaluate(
            "JSON.parse(document.getElementById('live-cells')?.textContent"
            " || '{\"cells\": []}').cells.filter(c => c.kind === 'skeleton')")

    def cell(self, n: int):
        return self.page.locator(f".live-cell-{n}")

    def controls(self, n: int):
        cell = self.cell(n)
        inside = cell.locator(":scope > .live-controls")
        return inside if inside.count() else self.page.locator(f".live-cell-{n} + .live-controls")

    def output(self, n: int):
        return self.controls(n).locator("xpath=following-sibling::div[contains(@class, 'live-output')][1]")

    def run(self, n: int, timeout: float = 120) -> tuple[str, str]:
        """Click the cell's Run; return (status, live output) when it is done."""
        controls = self.controls(n)
        controls.get_by_role("button", name="Run", exact=True).click()
        self.page.wait_for_function(
            "([el, done]) => !el.querySelector('.live-run').disabled"
            " && new RegExp(done).test(el.querySelector('.live-status').textContent)",
            arg=[controls.element_handle(), DONE.pattern], timeout=timeout * 1000)
        status = controls.locator(".live-status").inner_text()
        output = self.output(n)
        if not output.is_visible():
            return status, ""
        return status, "\n".join(text.strip("\n") for text in
                                 output.locator("pre").all_text_contents())

    def edit(self, n: int, code: str) -> None:
        self.cell(n).locator("pre.live-code").fill(code)

    def code(self, n: int) -> str:
        return self.cell(n).locator("pre.live-code").text_content()

    def build_output(self, n: int) -> str:
        blocks = self.cell(n).locator(":scope > .cell_output pre")
        return "\n".join(text.strip("\n") for text in blocks.all_text_contents())

    def requests_of_pyodide(self) -> list[str]:
        return [url for url in self.requested if f"/_static/{live.STATIC}/" in url]


def seconds(status: str) -> float:
    return float(re.search(r"Ran in ([\d.]+) s", status).group(1))


def load_factor() -> float:
    """How many times over the machine's cores are busy (1 when quiet): the
    time limits stretch by it, so that they hold under a parallel run."""
    return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


@pytest.fixture
def dual(browser, server, html):
    reader = Reader(browser, server, DUAL)
    yield reader
    reader.close()


@pytest.mark.parametrize("page", PART_ONE, ids=lambda p: p.name)
def test_every_live_cell_of_part_one_runs(page, browser, server, html):
    reader = Reader(browser, server, html_page(page))
    try:
        numbers = reader.numbers()
        assert numbers, f"{page.name} has no live cell with a Run button"
        skeletons = {skeleton["n"] for skeleton in reader.skeletons()}
        problems = []
        for n in numbers:
            if n in skeletons:
                continue  # to be filled in: test_live_skeletons_check_the_readers_code
            status, output = reader.run(n)
            expected = reader.build_output(n)
            raises = reader.cell(n).locator(".cell_output .traceback").count() > 0
            first = reader.code(n).strip().splitlines()[0][:60]
            if not status.startswith("Ran in"):
                problems.append(f"cell {n} ({first!r}): {status} {output}")
            elif raises or "Error" in expected.split(":")[0]:
                if output.split(":")[0] != expected.split(":")[0]:
                    problems.append(f"cell {n} ({first!r}) raised {output!r}, the build {expected!r}")
            elif output.strip() != expected.strip():
                problems.append(f"cell {n} ({first!r}) printed\n{output}\nthe build printed\n{expected}")
        assert not reader.blocked, f"requests to other hosts: {reader.blocked}"
        assert not reader.errors, reader.errors
        assert not problems, f"{page.name}:\n" + "\n".join(problems)
    finally:
        reader.close()


def test_first_cell_runs_and_the_time_to_the_first_result(dual):
    numbers = dual.numbers()
    assert not dual.requests_of_pyodide(), "Pyodide was fetched before the first Run"
    # The first live cell with an output in the build: the cells above it
    # (the engine) run first.
    first = next(n for n in numbers if dual.build_output(n))
    status, output = dual.run(first)
    first_result = seconds(status)
    assert output.strip() == dual.build_output(first)
    assert dual.requests_of_pyodide(), "Pyodide was not served by the site"
    assert not dual.blocked
    following = next(n for n in numbers if n > first and dual.build_output(n))
    status, output = dual.run(following)
    next_result = seconds(status)
    assert output.strip() == dual.build_output(following)
    factor = load_factor()
    print(f"\nlive cells: first result {first_result:.2f} s after the first click, "
          f"the next run {next_result:.3f} s (load factor {factor:.1f})")
    assert first_result <= FIRST_RESULT * factor
    assert next_result < NEXT_RESULT * factor


def test_an_edited_cell_runs_the_new_code_and_reset_restores_it(dual):
    n = next(n for n in dual.numbers() if dual.build_output(n))
    original, built = dual.code(n), dual.build_output(n)
    dual.edit(n, original.rstrip("\n") + '\nprint("and one more line", 6 * 7)\n')
    status, output = dual.run(n)
    assert output.strip() == built + "\nand one more line 42", output
    assert not dual.cell(n).locator(":scope > .cell_output").is_visible()
    dual.controls(n).get_by_role("button", name="Reset").click()
    assert dual.code(n) == original
    assert dual.cell(n).locator(":scope > .cell_output").is_visible()
    status, output = dual.run(n)
    assert output.strip() == built


def test_typing_keeps_the_indentation_and_shift_enter_runs(dual):
    n = next(n for n in dual.numbers() if dual.build_output(n))
    built = dual.build_output(n)
    dual.cell(n).locator("pre.live-code").click()
    keyboard = dual.page.keyboard
    keyboard.press("Control+End")
    for line in ["", "for k in range(2):", "print('k', k)", "if k:", "print('yes')"]:
        if line:
            keyboard.type(line)
        else:
            keyboard.press("Enter")
            continue
        keyboard.press("Enter")  # the next line is indented as this one needs
    keyboard.press("Shift+Enter")
    controls = dual.controls(n)
    dual.page.wait_for_function(
        "el => /Ran in/.test(el.querySelector('.live-status').textContent)",
        arg=controls.element_handle(), timeout=120_000)
    assert dual.output(n).inner_text().strip() == built + "\nk 0\nk 1\nyes"


def test_an_error_shows_as_one_line(dual):
    n = dual.numbers()[0]
    dual.edit(n, "values = [1.0, 2.0]\nvalues[2] / 0\n")
    status, output = dual.run(n)
    assert output == "IndexError: list index out of range", output
    dual.edit(n, "def broken(:\n    pass\n")
    status, output = dual.run(n)
    assert re.fullmatch(r"SyntaxError: .+ \(line 1\)", output), output
    error = dual.output(n).locator("pre.live-error")
    assert error.count() == 1 and bp.SHORT_ERROR.match(error.inner_text())


def test_the_value_of_the_last_expression_is_shown(dual):
    n = dual.numbers()[0]
    dual.edit(n, "print('printed')\n6 * 7\n")
    assert dual.run(n)[1] == "printed\n42"
    dual.edit(n, "6 * 7;\n")
    assert dual.run(n)[1] == ""


def self_checks(reader: Reader) -> list[tuple[int, int]]:
    """(answer cell, check cell): each live check (its build output says
    Correct) and the live cell just above it, inside the solution."""
    numbers = reader.numbers()
    pairs = []
    for above, n in zip(numbers, numbers[1:]):
        if "Correct" in reader.build_output(n) and reader.cell(above).locator(
                "xpath=ancestor::*[contains(@class, 'solution')]").count():
            pairs.append((above, n))
    return pairs


def test_a_self_check_judges_an_edited_answer(dual):
    pairs = self_checks(dual)
    assert pairs, "no live exercise self-check on the page"
    answer, check = pairs[-1]
    assert "Correct" in dual.run(check)[1]
    # A wrong answer: every function the answer defines returns 0.0.
    code = dual.code(answer)
    names = re.findall(r"^def (\w+)\(", code, re.MULTILINE)
    assert names, f"the answer cell defines no function:\n{code}"
    wrong = "".join(f"\n\ndef {name}(*args, **kwargs):\n    return 0.0\n" for name in names)
    dual.edit(answer, code.rstrip("\n") + wrong)
    status, output = dual.run(check)
    assert "Correct" not in output
    assert re.match(r"^\w+(Error|Exception)\b", output.splitlines()[-1]), output
    dual.controls(answer).get_by_role("button", name="Reset").click()
    status, output = dual.run(check)  # the answer runs again, as it was
    assert "Correct" in output, output


def test_stop_ends_a_run_and_python_starts_again(dual):
    n = dual.numbers()[0]
    dual.edit(n, "while True:\n    pass\n")
    controls = dual.controls(n)
    controls.get_by_role("button", name="Run", exact=True).click()
    stop = controls.get_by_role("button", name="Stop")
    stop.wait_for(state="visible")
    dual.page.wait_for_function(
        "el => el.querySelector('.live-status').textContent === 'Running…'",
        arg=controls.element_handle(), timeout=120_000)
    stop.click()
    dual.page.wait_for_function(
        "el => /Stopped/.test(el.querySelector('.live-status').textContent)",
        arg=controls.element_handle(), timeout=10_000)
    assert "Python was restarted" in dual.output(n).inner_text()
    dual.controls(n).get_by_role("button", name="Reset").click()
    following = next(m for m in dual.numbers() if m > n and dual.build_output(m))
    status, output = dual.run(following)
    assert output.strip() == dual.build_output(following)


def test_live_skeletons_check_the_readers_code(browser, server, html):
    """A skeleton as given fails its check; filled in with the solution's
    code (the live cells between it and its check) it passes."""
    found = 0
    for page in PART_ONE:
        reader = Reader(browser, server, html_page(page))
        try:
            for skeleton in reader.skeletons():
                found += 1
                n = skeleton["n"]
                status, output = reader.run(n)
                assert "Correct" not in output, f"{page.name}: the bare skeleton {n} passes its check"
                solution = "\n\n".join(reader.code(m) for m in skeleton["skip"])
                reader.edit(n, solution)
                status, output = reader.run(n)
                assert "Correct" in output, f"{page.name}: skeleton {n} with the solution:\n{output}"
        finally:
            reader.close()
    if not found:
        pytest.skip("no live skeleton in Part I")


@pytest.mark.parametrize("page", ["book/intro.html", "book/part2-pytorch/autograd-basics.html"])
def test_a_page_without_live_cells_loads_nothing_of_pyodide(page, browser, server, html):
    reader = Reader(browser, server, page)
    try:
        reader.page.wait_for_load_state("networkidle")
        assert not reader.page.locator(".live-controls").count()
        assert not [url for url in reader.requested if "/_static/live." in url]
        assert not reader.requests_of_pyodide()
    finally:
        reader.close()


@pytest.mark.parametrize("theme", bp.THEMES)
def test_live_controls_and_output_pass_axe(theme, browser, server, html):
    from axe_playwright_python.sync_playwright import Axe

    reader = Reader(browser, server, DUAL, theme)
    try:
        numbers = reader.numbers()
        reader.run(next(n for n in numbers if reader.build_output(n)))
        reader.edit(numbers[0], "1 / 0\n")
        reader.run(numbers[0])
        # The rest of the page is test_browser.py's: axe reads the live parts.
        live_parts = {"include": [[".live-cell"], [".live-controls"],
                                  [".live-output"]]}
        violations = Axe().run(reader.page, context=live_parts).response["violations"]
        serious = [f"{v['id']}: {v['help']} ({len(v['nodes'])}x)" for v in violations
                   if v.get("impact") in bp.SERIOUS]
        assert not serious, serious
    finally:
        reader.close()


def test_a_page_opened_from_a_file_says_how_to_serve_it(live_html, browser):
    """README command (1) builds _build/html/index.html; opened as a file,
    a live cell's Run says in one line how to serve the book, where the
    browser alone would refuse to start the worker."""
    context = bp.new_context(browser, "light")
    try:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto((live_html / DUAL).as_uri(), wait_until="load")
        first = page.locator(".live-controls").first
        assert "python -m http.server -d _build/html" in \
            first.locator(".live-status").inner_text()
        first.get_by_role("button", name="Run", exact=True).click()
        status = first.locator(".live-status")
        page.wait_for_function(
            "el => !el.querySelector('.live-run').disabled",
            arg=first.element_handle(), timeout=10_000)
        assert status.inner_text() == (
            "Live cells need the book served over HTTP: run python -m "
            "http.server -d _build/html and open http://localhost:8000/.")
        assert not errors
    finally:
        context.close()
