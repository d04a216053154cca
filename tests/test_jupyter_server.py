"""The nearest thing to Binder that runs here: a real JupyterLab, set up as Binder sets it up.

mybinder.org cannot be reached from this machine. What Binder adds to the
repository is an environment (binder/requirements.txt: the same packages as
the tests use, checked in tests/test_launch.py) and binder/postBuild. This
module starts ``jupyter lab`` on loopback with a random port and token,
after running binder/postBuild in a private Jupyter config directory, and
then uses it as a reader's browser would:

- JupyterLab's settings say that Markdown and MyST files open with the
  "Jupytext Notebook" viewer (what postBuild sets), and jupytext's JupyterLab
  extension is loaded;
- every page (.md) and every learner notebook (.ipynb) comes back from the
  contents API as a notebook, and the URL a Binder button opens
  (``lab/tree/<path>``) answers;
- a kernel started through the server, in a session on one page, runs that
  page's cells, as the contents API returns them, to the end.
"""

from __future__ import annotations

import json
import re
import urllib.parse

import jupytext
import pytest

from tools.pages import ROOT, notebook_pages
from launch_helpers import JupyterLab, KernelChannel

PAGES = notebook_pages()
# The page the kernel runs: a Part II page, with torch, errors shown on
# purpose and an exercise.
RUN_PAGE = ROOT / "book" / "part2-pytorch" / "autograd-basics.md"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = JupyterLab(tmp_path_factory.mktemp("jupyterlab"))
    yield server
    server.stop()


def contents(lab: JupyterLab, path) -> dict:
    relative = urllib.parse.quote(path.relative_to(ROOT).as_posix())
    return lab.get(f"/api/contents/{relative}?content=1")


def test_post_build_makes_jupyterlab_open_pages_as_notebooks(lab):
    assert lab.post_build.returncode == 0, f"binder/postBuild failed:\n{lab.post_build.stderr}"
    plugin = lab.get("/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    viewers = {**plugin["schema"]["properties"]["defaultViewers"].get("default", {}),
               **plugin.get("settings", {}).get("defaultViewers", {})}
    for file_type in ("markdown", "myst"):
        assert viewers.get(file_type) == "Jupytext Notebook", (
            f"JupyterLab opens {file_type} files with {viewers.get(file_type)!r}, not as notebooks: "
            f"binder/postBuild did not set the default viewer.\n{lab.post_build.stdout}")
    page = lab.get("/lab")
    config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                  page, re.DOTALL).group(1))
    extensions = {e["name"] for e in config.get("federated_extensions", [])}
    assert "jupyterlab-jupytext" in extensions, f"jupytext's JupyterLab extension is not loaded: {extensions}"


def test_every_page_and_learner_notebook_opens_as_a_notebook(lab):
    problems = []
    for page in PAGES:
        for path in (page, page.with_suffix(".ipynb")):
            name = path.relative_to(ROOT)
            try:
                model = contents(lab, path)
            except Exception as error:  # noqa: BLE001 - reported per file below
                problems.append(f"{name}: GET /api/contents failed: {error}")
                continue
            if model.get("type") != "notebook" or model.get("format") != "json":
                problems.append(f"{name}: opened as {model.get('type')} ({model.get('format')}), not a notebook")
                continue
            if path.suffix == ".md" and len(model["content"]["cells"]) != len(jupytext.read(page).cells):
                problems.append(f"{name}: {len(model['content']['cells'])} cells through the server, "
                                f"{len(jupytext.read(page).cells)} in the page")
            # The URL that the page's Binder button opens, once Binder has started the server.
            status, _ = lab.request("GET", f"/lab/tree/{urllib.parse.quote(name.as_posix())}")
            if status != 200:
                problems.append(f"{name}: /lab/tree/ answered {status}")
    assert not problems, "\n".join(problems)


def test_a_kernel_started_through_the_server_runs_a_page(lab):
    path = RUN_PAGE.relative_to(ROOT).as_posix()
    model = contents(lab, RUN_PAGE)
    assert model.get("type") == "notebook", f"{path} opens as {model.get('type')}, not as a notebook"
    notebook = model["content"]
    # What JupyterLab does when it opens a notebook: a session on its path, so
    # the kernel starts in the page's folder.
    _, session = lab.request("POST", "/api/sessions", {
        "path": path, "name": RUN_PAGE.name, "type": "notebook", "kernel": {"name": "python3"}})
    channel = KernelChannel(lab, session["kernel"]["id"])
    try:
        ran = 0
        for index, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] != "code":
                continue
            result = channel.execute(cell["source"])
            where = f"{path}, cell {index} ({cell['source'].splitlines()[0] if cell['source'] else ''!r})"
            if "raises-exception" in cell["metadata"].get("tags", []):
                expected = cell["metadata"].get("expect_error")
                assert result["status"] == "error" and result["ename"] == expected, (
                    f"{where}: expected {expected}, got {result['status']} {result['ename']}: {result['evalue']}")
            else:
                assert result["status"] == "ok", f"{where}: {result['ename']}: {result['evalue']}"
            ran += 1
        assert ran == sum(c["cell_type"] == "code" for c in notebook["cells"]) > 0
    finally:
        channel.close()
        lab.request("DELETE", f"/api/sessions/{session['id']}")
