"""Every way of reading a page leads somewhere real: Colab, Binder, download, the web.

This machine reaches neither Colab, nor mybinder.org, nor GitHub. The tests
check what those services would be given:

- Colab and Binder buttons (in the built HTML) name a file of the
  repository: the page's learner notebook, which exists, is not ignored by
  git, is a valid notebook, and whose numbering of exercises, figures and
  equations is the book's. That it is current and runs is
  tests/test_learner_notebooks.py; that JupyterLab opens it is
  tests/test_jupyter_server.py.
- The download button gives a plain notebook whose code is the page's
  (which tests/test_pages.py runs), with its outputs.
- Binder's environment (binder/) asks for versions the book supports, and a
  CPU-only PyTorch.
- The GitHub workflows pass actionlint, run .ci/run on pushes and pull
  requests, and publish _build/html with the execution cache kept.
- The README's launch links point at this repository's book, Binder and Colab.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement

from tools import learner_notebooks as learner
from tools.pages import ROOT, notebook_pages, read_notebook

PAGES = notebook_pages()


def page_id(page: Path) -> str:
    return page.name


CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPOSITORY = CONFIG["repository"]["url"].rstrip("/")
ORG, REPO = REPOSITORY.split("github.com/")[1].split("/")[:2]
BRANCH = CONFIG["repository"].get("branch", "main")
LAUNCH = CONFIG["launch_buttons"]
COLAB = f"{LAUNCH['colab_url'].rstrip('/')}/github/{ORG}/{REPO}/blob/{BRANCH}/"
BINDER = f"{LAUNCH['binderhub_url'].rstrip('/')}/v2/gh/{ORG}/{REPO}/{BRANCH}?urlpath=lab/tree/"
MYST_LEFTOVER = re.compile(r"(?<!`)\{[a-z][\w:-]*\}`|^\s*(```+|:::+)\{|^\([\w.-]+\)=\s*$", re.M)


def page_html(built_book, page: Path) -> str:
    path = built_book.html / page.relative_to(ROOT).with_suffix(".html")
    assert path.exists(), f"the build made no {path.relative_to(built_book.html)}:\n{built_book.log[-2000:]}"
    return path.read_text(encoding="utf-8")


def hrefs(html: str, start: str) -> list[str]:
    return [urllib.parse.unquote(h.replace("&amp;", "&")) for h in re.findall(r'href="([^"]+)"', html)
            if h.replace("&amp;", "&").startswith(start)]


def git_ignored(path: Path) -> bool:
    if not (ROOT / ".git").exists():
        return False
    return subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT).returncode == 0


# --- Colab and Binder -------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_colab_and_binder_buttons_open_the_learner_notebook(built_book, page):
    html = page_html(built_book, page)
    expected = learner.learner_path(page).relative_to(ROOT).as_posix()
    for service, prefix in (("Colab", COLAB), ("Binder", BINDER)):
        links = hrefs(html, prefix)
        assert len(links) == 1, f"{page.name}: expected one {service} link starting {prefix}, found {links}"
        target = links[0].removeprefix(prefix)
        assert target == expected, (
            f"{page.name}: the {service} button opens {target}, not the learner notebook {expected} "
            "(sphinx-book-theme picks the .ipynb only when it exists next to the page)")
        path = ROOT / target
        assert path.is_file(), f"{page.name}: the {service} button opens {target}, which does not exist"
        assert not git_ignored(path), f"{target} is ignored by git, so {service} would not find it"
        nbformat.validate(nbformat.read(path, as_version=4))


def numbers(html: str, markdown: str) -> dict:
    """kind -> (numbers in the page's HTML, numbers in a notebook's Markdown)."""
    return {
        "exercises": (re.findall(r'<span class="caption-number">Exercise (\d+)', html)
                      or re.findall(r'class="admonition-title">Exercise (\d+)', html),
                      re.findall(r"\*\*Exercise (\d+)", markdown)),
        "figures": (re.findall(r'<span class="caption-number">Fig\. (\d+)', html),
                    re.findall(r"\*\*Fig\. (\d+)\.\*\*", markdown)),
        "equations": (re.findall(r'<span class="eqno">\((\d+)\)', html),
                      re.findall(r"\\tag\{(\d+)\}", markdown)),
    }


def markdown_of(notebook) -> str:
    return "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_notebooks_number_things_as_the_book_does(built_book, page):
    """The download numbers exercises, figures and equations as the page
    does; the learner notebook too, less what the solutions it drops hold."""
    html = page_html(built_book, page)
    path = learner.learner_path(page)
    assert path.exists(), f"{path.relative_to(ROOT)} is missing: run `{learner.COMMAND}`"
    hint = (f"Run `{learner.COMMAND}`; if that does not help, the numbering in "
            "tools/learner_notebooks.py (Book) no longer follows Sphinx's.")
    learner_numbers = numbers(html, markdown_of(nbformat.read(path, as_version=4)))
    download_numbers = numbers(html, markdown_of(download(built_book, page)[1]))
    for kind, (in_book, in_download) in download_numbers.items():
        assert in_book == in_download, (
            f"{page.name}: {kind} are numbered {in_book} in the book but "
            f"{in_download} in its download. {hint}")
        in_learner = learner_numbers[kind][1]
        assert set(in_learner) <= set(in_book) and in_learner == sorted(
            in_learner, key=in_book.index), (
            f"{page.name}: {kind} are numbered {in_learner} in its learner "
            f"notebook, but {in_book} in the book. {hint}")


# --- Download ------------------------------------------------------------------------------


def download(built_book, page: Path) -> tuple[Path, nbformat.NotebookNode]:
    html_path = built_book.html / page.relative_to(ROOT).with_suffix(".html")
    links = [h for h in re.findall(r'href="([^"]*_sources/[^"]*\.ipynb)"', page_html(built_book, page))]
    assert len(links) == 1, f"{page.name}: expected one .ipynb download link, found {links}"
    path = (html_path.parent / links[0]).resolve()
    assert path.is_file(), f"{page.name}: the download link {links[0]} leads to no file"
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    return path, notebook


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_download_is_a_plain_notebook_of_the_page(built_book, page):
    _, notebook = download(built_book, page)
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown" and MYST_LEFTOVER.search(cell.source):
            problems.append(f"cell {index} keeps MyST syntax: {MYST_LEFTOVER.search(cell.source)[0]!r}")
        if cell.cell_type == "code" and re.search(r"^\s*(import|from) jupytext", cell.source, re.M):
            problems.append(f"cell {index} imports jupytext, which Colab and a bare Jupyter lack")
    if not any(c.get("outputs") for c in notebook.cells if c.cell_type == "code"):
        problems.append("has no outputs: it is not the executed page")
    # The code is the page's, solutions included, so tests/test_pages.py runs
    # it; only the build's bookkeeping (glue) is left out.
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    page_code = [kept for c in read_notebook(page).cells if c.cell_type == "code"
                 if (kept := learner.without_bookkeeping(c.source))]
    if code != page_code:
        problems.append("its code cells differ from the page's")
    assert not problems, f"{page.name}'s download:\n  " + "\n  ".join(problems)


# --- Binder's environment ---------------------------------------------------------------------


def requirements(path: Path) -> dict[str, Requirement]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            found[requirement.name.lower()] = requirement
    return found


def test_binder_environment_is_the_books_with_a_cpu_only_torch():
    """Binder installs what the pages need, constrained to the book's lock."""
    text = (ROOT / "binder" / "requirements.txt").read_text()
    binder = requirements(ROOT / "binder" / "requirements.txt")
    book = requirements(ROOT / "requirements.txt")
    assert "-c ../requirements.txt" in text.splitlines()
    for name in ("torch", "numpy", "matplotlib", "jupytext", "jupyterlab"):
        assert name in binder, f"binder/requirements.txt does not install {name}"
        assert name in book and pins_of(book[name]), f"the lock does not pin {name}"
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    book_tools = {"jupyter-book", "pytest", "sphinx-exercise"} & set(binder)
    assert not book_tools, f"Binder need not install the book-building tools {book_tools}"
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.stat().st_mode & 0o111, "binder/postBuild must be executable"
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert runtime == f"python-{sys.version_info.major}.{sys.version_info.minor}", runtime


def test_every_installed_package_is_pinned_exactly():
    """requirements.txt pins every package it installs with ==, without a
    local version suffix that only PyTorch's own index knows."""
    lines = [line.split("#")[0].strip() for line in
             (ROOT / "requirements.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[^=+\s]+", line)
                         for line in lines), [
        line for line in lines
        if not re.fullmatch(r"[A-Za-z0-9_.-]+==[^=+\s]+", line)]
    assert "torch==2.13.0" in lines


def pins_of(requirement: Requirement) -> str:
    return next(s.version for s in requirement.specifier if s.operator == "==")


def test_launch_buttons_use_jupyterlab():
    assert LAUNCH.get("notebook_interface") == "jupyterlab"
    assert "book/**/*.ipynb" in CONFIG["exclude_patterns"], "the learner notebooks must not be built as pages"


# --- Workflows ----------------------------------------------------------------------------------

WORKFLOWS = ROOT / ".github" / "workflows"


def workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def test_workflows_pass_actionlint():
    actionlint = shutil.which("actionlint")
    assert actionlint, "actionlint is not installed (requirements.txt installs it)"
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert files, "no workflows in .github/workflows"
    process = subprocess.run([actionlint, "-no-color", *map(str, files)], cwd=ROOT, capture_output=True, text=True)
    assert process.returncode == 0, f"actionlint found problems:\n{process.stdout}{process.stderr}"


def test_ci_workflow_runs_ci_run_on_pushes_and_pull_requests():
    ci = workflow("ci.yml")
    assert "push" in ci["on"] and "pull_request" in ci["on"]
    runs = [s.get("run", "") for job in ci["jobs"].values() for s in steps(job)]
    assert any(r.strip() == "bash .ci/run" for r in runs), runs


def test_pages_workflow_builds_with_the_cache_and_deploys_from_main():
    pages = workflow("pages.yml")
    assert pages["on"]["push"]["branches"] == [BRANCH]
    assert pages.get("concurrency"), "deployments should not overlap"
    build, deploy = pages["jobs"]["build"], pages["jobs"]["deploy"]
    cache = CONFIG["execute"].get("cache") or "_build/.jupyter_cache"  # Jupyter Book's default place
    caches = [s for s in steps(build) if s.get("uses", "").startswith("actions/cache@")]
    assert caches and caches[0]["with"]["path"] == cache, f"the execution cache ({cache}) is not kept: {caches}"
    assert "restore-keys" in caches[0]["with"], "without restore-keys a new run never finds an older cache"
    runs = [s.get("run", "") for s in steps(build)]
    builds = [i for i, r in enumerate(runs) if "jupyter-book build" in r]
    assert builds, f"no step builds the book: {runs}"
    build_index = builds[0]
    assert steps(build).index(caches[0]) < build_index, "the cache must be restored before the build"
    uploads = [s for s in steps(build) if s.get("uses", "").startswith("actions/upload-pages-artifact@")]
    assert uploads and uploads[0]["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in steps(deploy))
    permissions = {**pages.get("permissions", {}), **deploy.get("permissions", {})}
    assert permissions.get("pages") == "write" and permissions.get("id-token") == "write", permissions


# --- README ---------------------------------------------------------------------------------------


def test_readme_has_a_launch_link_for_every_way_of_reading():
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Launch\n(.*?)(?=^## )", readme, re.M | re.S)
    assert section, "README.md has no '## Launch' section"
    links = re.findall(r"\]\((https?://[^)\s]+)\)", section.group(1))
    online = learner.published_url(REPOSITORY)
    assert any(link.startswith(online) for link in links), f"no link to the online book {online}: {links}"
    binder = [link for link in links if link.startswith(f"{LAUNCH['binderhub_url'].rstrip('/')}/v2/gh/{ORG}/{REPO}/")]
    assert binder, f"no Binder link for {ORG}/{REPO}: {links}"
    colab = [link for link in links if link.startswith(COLAB)]
    assert colab, f"no Colab link for {ORG}/{REPO} on {BRANCH}: {links}"
    for link in colab:
        target = ROOT / link.removeprefix(COLAB)
        assert target.suffix == ".ipynb" and target.is_file(), f"the README's Colab link opens {target}"
    for link in binder:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(link).query).get("urlpath", ["lab"])[0]
        target = ROOT / query.removeprefix("lab/tree/").removeprefix("lab")
        assert target.exists(), f"the README's Binder link opens {query}, which does not exist"
    assert learner.COMMAND in readme, "README's 'Adding a page' should give the learner notebook command"
