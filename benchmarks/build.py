"""Time the book's build against a stock Jupyter Book build, on copies of the book.

    python benchmarks/build.py [--no-tests] [--output FILE]

Everything runs on copies of this repository in a temporary folder (the
working tree, without _build/ and caches), so nothing here is touched. In
one run it measures:

1. where a page's execution time goes before its first line runs (Python
   start, ``import torch``, matplotlib and its font cache, starting a
   kernel), cold and in a warm kernel (tools/warm_kernel.py);
2. the stock serial ``jupyter-book build``: clean, no-op rebuild, one-page
   edit (a comment added to one code cell of one page);
3. the book's build command ``python tools/build.py`` with every core, the
   same three, and with one worker (the scaling), and the render alone
   (``--all`` with everything cached: Sphinx reads and writes every page,
   executes nothing);
4. the test suite, ``python -m pytest``, after the build as CI runs it
   (.ci/run), and whether it executed any page;

then prints each page's execution time, the floor (the larger of the
longest page and the summed execution divided by the cores, plus the
render), every figure as a ratio of the stock one, and writes a JSON
report (default benchmarks/results/latest.json). Run it on a quiet
machine: it prints the load average it started and ended with.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EDITED_PAGE = "book/part2-pytorch/autograd-basics.md"  # no other page depends on it
NOT_COPIED = ("_build", ".jupyter_cache", ".git", ".pytest_cache", ".hypothesis", "__pycache__",
              ".benchmarks", "*.pyc")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run(command: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> dict:
    """Run a command; its wall-clock time, CPU time (with its children) and output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    log = ANSI.sub("", process.stdout + process.stderr)
    if check and process.returncode != 0:
        print(log[-4000:], file=sys.stderr)
        raise SystemExit(f"failed (exit {process.returncode}): {' '.join(command)}")
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "log": log,
            "stdout": process.stdout, "returncode": process.returncode}


def copy_book(folder: Path) -> Path:
    shutil.copytree(ROOT, folder, ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)
    return folder


def executed_pages(log: str) -> dict:
    """Which pages were executed, by whom, and how long each took."""
    sphinx = dict(re.findall(r"/([^/\s]+\.md): Executed notebook in ([0-9.]+) seconds", log))
    sphinx_failed = re.findall(r"/([^/\s]+\.md): Executing notebook failed", log)
    parallel = dict(re.findall(r"\[parallel execution\] executed (\S+\.md) in ([0-9.]+) s", log))
    return {
        "by_sphinx": {name: float(s) for name, s in sphinx.items()},
        "by_sphinx_failed": sphinx_failed,
        "in_parallel": {name: float(s) for name, s in parallel.items()},
    }


def build(book: Path, command: str, *options: str) -> dict:
    if command == "stock":
        argv = ["jupyter-book", "build", str(book), *options]
    else:
        argv = [sys.executable, str(book / "tools" / "build.py"), str(book), *options]
    result = run(argv, book)
    del result["stdout"], result["returncode"]
    result["executed"] = executed_pages(result.pop("log"))
    result["pages_executed"] = (len(result["executed"]["by_sphinx"])
                                + len(result["executed"]["by_sphinx_failed"])
                                + len(result["executed"]["in_parallel"]))
    return result


def edit_one_page(book: Path) -> None:
    """Add a comment at the end of the page's first code cell: new code, same outputs."""
    page = book / EDITED_PAGE
    text = page.read_text(encoding="utf-8")
    at = text.index("\n```\n", text.index("```{code-cell}")) + 1
    page.write_text(text[:at] + "# an edit by benchmarks/build.py\n" + text[at:], encoding="utf-8")


# --- Where a page's overhead goes ----------------------------------------------------

OVERHEAD_NOTEBOOK = """
import asyncio, json, sys, time
sys.path.insert(0, {root!r})
import nbformat
from nbclient import NotebookClient

def notebook(source):
    nb = nbformat.v4.new_notebook(metadata={{"kernelspec": {{"name": "python3",
        "display_name": "Python 3", "language": "python"}}}})
    nb.cells = [nbformat.v4.new_code_cell(source)]
    return nb

async def timed(source, manager_class=None):
    options = {{"kernel_manager_class": manager_class}} if manager_class else {{}}
    start = time.perf_counter()
    await NotebookClient(notebook(source), **options).async_execute()
    return time.perf_counter() - start

results = {{}}
for label, source in (("kernel", "pass"), ("kernel_and_page_imports",
                      "import torch\\nimport matplotlib.pyplot as plt")):
    results["cold " + label] = [asyncio.run(timed(source)) for _ in range({repeat})]
from tools.warm_kernel import WarmKernels
start = time.perf_counter()
with WarmKernels() as warm:
    asyncio.run(timed("pass", warm.manager_class))
    results["warm template start and first kernel"] = [time.perf_counter() - start]
    for label, source in (("kernel", "pass"), ("kernel_and_page_imports",
                          "import torch\\nimport matplotlib.pyplot as plt")):
        results["warm " + label] = [asyncio.run(timed(source, warm.manager_class))
                                    for _ in range({repeat})]
print(json.dumps(results))
"""


def median_run(command: list[str], cwd: Path, repeat: int, env: dict | None = None) -> float:
    return round(statistics.median(run(command, cwd, env)["seconds"] for _ in range(repeat)), 2)


def overhead(folder: Path, repeat: int = 3) -> dict:
    """Seconds (median of ``repeat``) of each part of starting a page."""
    python = sys.executable
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}  # as the build's kernels
    figures = {
        "python start": median_run([python, "-c", "pass"], folder, repeat),
        "python + import torch": median_run([python, "-c", "import torch"], folder, repeat),
        "python + import matplotlib.pyplot": median_run(
            [python, "-c", "import matplotlib.pyplot"], folder, repeat),
        "python + import IPython, ipykernel": median_run(
            [python, "-c", "import IPython, ipykernel.kernelapp"], folder, repeat),
    }
    fresh = folder / "mplconfig"  # a fresh machine: no matplotlib font cache yet
    figures["python + import matplotlib.pyplot, no font cache"] = round(statistics.median(
        run([python, "-c", "import matplotlib.pyplot"], folder,
            {**os.environ, "MPLCONFIGDIR": str(fresh / str(i))})["seconds"]
        for i in range(repeat)), 2)
    script = folder / "overhead.py"
    script.write_text(OVERHEAD_NOTEBOOK.format(root=str(ROOT), repeat=repeat))
    kernels = json.loads(run([python, str(script)], folder, env)["stdout"].strip().splitlines()[-1])
    figures.update({label: round(statistics.median(times), 2) for label, times in kernels.items()})
    return figures


# --- The test suite ------------------------------------------------------------------


def cache_records(book: Path) -> dict:
    from jupyter_cache import get_cache

    cache = get_cache(str(book / "_build" / ".jupyter_cache"))
    return {r.hashkey: str(r.created) for r in cache.list_cache_records()}


def test_suite(book: Path) -> dict:
    before = cache_records(book)
    process_start = time.perf_counter()
    result = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"], book, check=False)
    log = result.pop("log")
    summaries = re.findall(r"^=+ (.*(?:passed|failed).*) =+$", ANSI.sub("", result.pop("stdout")),
                           re.MULTILINE)
    result["seconds"] = round(time.perf_counter() - process_start, 2)
    result["summary"] = summaries[-1] if summaries else "no summary"
    result["slowest"] = re.findall(r"^([0-9.]+s \w+ +\S+)$", log, re.MULTILINE)[:15]
    after = cache_records(book)
    result["pages_executed"] = len(set(after.items()) - set(before.items()))
    return result


# --- Report -----------------------------------------------------------------------------


def floor(page_seconds: dict, render: float, n: int) -> dict:
    total = sum(page_seconds.values())
    longest = max(page_seconds.values())
    return {"longest_page": round(longest, 2), "summed_execution": round(total, 2),
            "render": render, "cores": n,
            "seconds": round(max(longest, total / n) + render, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-tests", action="store_true", help="skip the test suite")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    args = parser.parse_args()
    n = cores()
    report = {"cores": n, "python": platform.python_version(), "machine": platform.machine(),
              "load_average_at_start": os.getloadavg(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    print(f"{n} cores; load average {report['load_average_at_start']}")

    with tempfile.TemporaryDirectory(prefix="book-benchmark-") as scratch:
        scratch = Path(scratch)
        print("where a page's start-up time goes ...", flush=True)
        report["overhead"] = overhead(scratch)

        stock_book = copy_book(scratch / "stock")
        print("stock jupyter-book build: clean, no-op, one-page edit ...", flush=True)
        stock = {"clean": build(stock_book, "stock"), "noop": build(stock_book, "stock")}
        edit_one_page(stock_book)
        stock["one_page_edit"] = build(stock_book, "stock")

        fast_book = copy_book(scratch / "fast")
        print(f"python tools/build.py ({n} workers): clean, no-op, one-page edit, render ...", flush=True)
        fast = {"clean": build(fast_book, "fast"), "noop": build(fast_book, "fast")}
        edit_one_page(fast_book)
        fast["one_page_edit"] = build(fast_book, "fast")
        fast["render_only"] = build(fast_book, "fast", "--all")

        print("python tools/build.py --workers 1: clean ...", flush=True)
        one_book = copy_book(scratch / "one-worker")
        fast["clean_1_worker"] = build(one_book, "fast", "--workers", "1")

        if not args.no_tests:
            print("the test suite after the build, as .ci/run runs it ...", flush=True)
            report["test_suite"] = test_suite(fast_book)

    report["stock"], report["build_command"] = stock, fast
    serial_pages = stock["clean"]["executed"]["by_sphinx"]
    warm_pages = fast["clean_1_worker"]["executed"]["in_parallel"]
    report["page_seconds"] = {name: {"stock_serial": serial_pages.get(name),
                                     "warm_1_worker": warm_pages.get(name),
                                     "warm_parallel": fast["clean"]["executed"]["in_parallel"].get(name)}
                              for name in sorted(set(serial_pages) | set(warm_pages))}
    report["floor"] = floor(warm_pages, fast["render_only"]["seconds"], n)
    report["floor_stock_pages"] = floor(serial_pages, fast["render_only"]["seconds"], n)
    ratio = lambda a, b: round(a / b, 3)  # noqa: E731
    report["ratios"] = {
        "clean / stock clean": ratio(fast["clean"]["seconds"], stock["clean"]["seconds"]),
        "clean with 1 worker / stock clean": ratio(fast["clean_1_worker"]["seconds"],
                                                   stock["clean"]["seconds"]),
        "clean / clean with 1 worker": ratio(fast["clean"]["seconds"],
                                             fast["clean_1_worker"]["seconds"]),
        "no-op / stock no-op": ratio(fast["noop"]["seconds"], stock["noop"]["seconds"]),
        "one-page edit / stock one-page edit": ratio(fast["one_page_edit"]["seconds"],
                                                     stock["one_page_edit"]["seconds"]),
        "floor / stock clean": ratio(report["floor"]["seconds"], stock["clean"]["seconds"]),
        "clean / floor": ratio(fast["clean"]["seconds"], report["floor"]["seconds"]),
    }
    report["load_average_at_end"] = os.getloadavg()
    print_report(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.output}")


def print_report(report: dict) -> None:
    print(f"\n{report['cores']} cores, load average {report['load_average_at_start']} "
          f"at the start, {report['load_average_at_end']} at the end")
    print("\nwhere a page's start-up goes (seconds, median):")
    for label, seconds in report["overhead"].items():
        print(f"  {label:<52} {seconds:7.2f}")
    print("\npage execution (seconds): stock serial (cold kernel), warm 1 worker, warm parallel")
    for name, times in report["page_seconds"].items():
        shown = ["{:7.2f}".format(t) if t is not None else "      -" for t in times.values()]
        print(f"  {name:<36} {'  '.join(shown)}")
    print("\nbuilds (seconds wall, CPU, pages executed):")
    for who, runs in (("stock jupyter-book build", report["stock"]),
                      ("python tools/build.py", report["build_command"])):
        for label, result in runs.items():
            print(f"  {who + ' ' + label:<52} {result['seconds']:7.2f} {result['cpu_seconds']:7.2f}"
                  f" {result['pages_executed']:4d}")
    if "test_suite" in report:
        suite = report["test_suite"]
        print(f"  {'python -m pytest after the build':<52} {suite['seconds']:7.2f} "
              f"{suite['cpu_seconds']:7.2f} {suite['pages_executed']:4d}   ({suite['summary']})")
    f = report["floor"]
    print(f"\nfloor: max(longest page {f['longest_page']}, {f['summed_execution']} / {f['cores']} cores)"
          f" + render {f['render']} = {f['seconds']} s")
    print("ratios:")
    for label, value in report["ratios"].items():
        print(f"  {label:<40} {value:6.3f}")


if __name__ == "__main__":
    main()
