"""Time the book's build against a stock Jupyter Book build, on copies.

    python benchmarks/build.py [--no-tests] [--output FILE]

Everything runs on copies of this repository in a temporary folder (without
_build/ and caches), so nothing here is touched. In one run it measures:

1. stock ``jupyter-book build``: the same book with the book's extension
   (tools/book.py) taken out of _config.yml, so MyST-NB executes the pages
   one after the other: clean build, no-op rebuild, one page's code edited;
2. README command (1), ``jupyter-book build -W -n --keep-going .``, which
   executes the pages in parallel first: the same three;
3. the test suite, ``python -m pytest``, after the build, as .ci/run runs
   it, and how many pages it executed (it should execute none);

then prints every figure as a ratio of the stock one and writes a JSON
report (default benchmarks/results/latest.json). Run it on a quiet
machine: it prints the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EDITED_PAGE = "book/part2-pytorch/autograd-basics.md"
NOT_COPIED = ("_build", ".git", ".pytest_cache", ".hypothesis", "__pycache__",
              ".benchmarks")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(command: list[str], cwd: Path, check: bool = True) -> tuple[float, str]:
    start = time.perf_counter()
    process = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = round(time.perf_counter() - start, 1)
    log = ANSI.sub("", process.stdout + process.stderr)
    if check and process.returncode != 0:
        print(log[-4000:], file=sys.stderr)
        raise SystemExit(f"failed (exit {process.returncode}): {command}")
    return seconds, log


def copy_book(folder: Path, stock: bool) -> Path:
    shutil.copytree(ROOT, folder, symlinks=True,
                    ignore=shutil.ignore_patterns(*NOT_COPIED))
    if stock:
        config = folder / "_config.yml"
        text = config.read_text()
        config.write_text(re.sub(r"\n  local_extensions:\n(    .*\n)+", "\n",
                                 text))
    return folder


def executed(log: str) -> int:
    """Pages executed by MyST-NB, and by tools/book.py in parallel."""
    parallel = re.search(r"\[execution\] (\d+) page", log)
    return (len(re.findall(r"Executing notebook using", log))
            + (int(parallel.group(1)) if parallel else 0))


def build(book: Path, stock: bool) -> dict:
    options = [] if stock else ["-W", "-n", "--keep-going"]
    jupyter_book = str(Path(sys.executable).with_name("jupyter-book"))
    seconds, log = run([jupyter_book, "build", *options, "."], book)
    return {"seconds": seconds, "pages_executed": executed(log)}


def edit_one_page(book: Path) -> str:
    """A comment at the end of the page's first code cell: new code.
    Returns the page's text before the edit."""
    page = book / EDITED_PAGE
    text = page.read_text(encoding="utf-8")
    at = text.index("\n```\n", text.index("```{code-cell}")) + 1
    page.write_text(text[:at] + "# an edit by benchmarks/build.py\n"
                    + text[at:], encoding="utf-8")
    return text


def builds(book: Path, stock: bool) -> dict:
    result = {"clean": build(book, stock), "noop": build(book, stock)}
    original = edit_one_page(book)
    result["one_page_edit"] = build(book, stock)
    (book / EDITED_PAGE).write_text(original, encoding="utf-8")
    return result


def cache_records(book: Path) -> set:
    from jupyter_cache import get_cache

    folder = book / "_build" / ".jupyter_cache"
    return {(str(folder), r.hashkey, str(r.created)) for path in
            folder.iterdir() for r in get_cache(str(path)).list_cache_records()}


def test_suite(book: Path) -> dict:
    before = cache_records(book)
    seconds, log = run([sys.executable, "-m", "pytest", "-p",
                        "no:cacheprovider"], book, check=False)
    summary = re.findall(r"^=+ (.*(?:passed|failed).*) =+$", log, re.M)
    return {"seconds": seconds, "summary": summary[-1] if summary else log[-500:],
            "pages_executed": len(cache_records(book) - before),
            "slowest": re.findall(r"^([0-9.]+s \w+ +\S+)$", log, re.M)[:10]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-tests", action="store_true")
    parser.add_argument("--output", type=Path,
                        default=ROOT / "benchmarks" / "results" / "latest.json")
    args = parser.parse_args()
    report = {"cores": os.cpu_count(), "python": platform.python_version(),
              "machine": platform.machine(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
              "load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="book-benchmark-") as scratch:
        scratch = Path(scratch)
        print("stock jupyter-book build: clean, no-op, one page ...", flush=True)
        report["stock"] = builds(copy_book(scratch / "stock", True), True)
        print("README command (1): clean, no-op, one page ...", flush=True)
        book = copy_book(scratch / "book", False)
        report["book"] = builds(book, False)
        if not args.no_tests:
            print("python -m pytest after the build ...", flush=True)
            build(book, False)  # the page edited above is as committed again
            report["test_suite"] = test_suite(book)
    report["load_average_at_end"] = os.getloadavg()
    report["ratios"] = {case: round(report["book"][case]["seconds"]
                                    / report["stock"][case]["seconds"], 2)
                        for case in report["stock"]}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for case, ratio in report["ratios"].items():
        print(f"{case:14} stock {report['stock'][case]['seconds']:6.1f} s "
              f"({report['stock'][case]['pages_executed']} pages), book "
              f"{report['book'][case]['seconds']:6.1f} s "
              f"({report['book'][case]['pages_executed']} pages): {ratio}")
    if "test_suite" in report:
        suite = report["test_suite"]
        print(f"tests: {suite['seconds']} s, {suite['summary']}, "
              f"{suite['pages_executed']} pages executed")
    print(f"load average {report['load_average_at_start']} -> "
          f"{report['load_average_at_end']}; report in {args.output}")


if __name__ == "__main__":
    main()
