"""Helpers for the tests of the launch paths (Colab, Binder, download).

- ``run_learner_notebook``: run a learner notebook in a fresh kernel, in an
  empty folder (as Colab does: nothing next to the notebook), checking that
  every exercise stub raises ``NotImplementedError`` (a skeleton may do
  anything) and then running the page's own solution in its place.
- ``JupyterLab``: a real JupyterLab server on loopback, with a random port
  and token, configured as ``binder/postBuild`` configures Binder's.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from book_pages import strip_ansi
from tools.execution import KERNEL_ENV, TIMEOUT as EXEC_TIMEOUT
from tools.learner_notebooks import ANSWER, STUB
from tools.pages import ROOT


def first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip()]
    return lines[0][:60] if lines else ""


class NotebookRunError(AssertionError):
    pass


def run_learner_notebook(notebook: nbformat.NotebookNode, solutions: list[list[str]], cwd: Path,
                         name: str) -> int:
    """Run ``notebook`` cell by cell; at each stub, expect NotImplementedError, then run the solution.

    Returns how many stubs were run. Raises NotebookRunError naming the cell
    when a cell fails unexpectedly or a stub does not raise.
    """
    client = NotebookClient(notebook, timeout=EXEC_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    stubs = 0
    env = {**os.environ, **KERNEL_ENV}
    with client.setup_kernel(env=env, cwd=str(cwd)):
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            where = f"{name}, cell {index} ({first_line(cell.source)!r})"
            if ANSWER in cell.metadata.get("tags", []):
                if stubs >= len(solutions):
                    raise NotebookRunError(f"{where}: more stubs than the page has solutions")
                try:
                    client.execute_cell(cell, index)
                except CellExecutionError as error:
                    if cell.source == STUB and error.ename != "NotImplementedError":
                        raise NotebookRunError(f"{where}: the stub raised {error.ename}, "
                                               f"not NotImplementedError") from None
                else:
                    if cell.source == STUB:
                        raise NotebookRunError(
                            f"{where}: the stub did not raise NotImplementedError")
                for code in solutions[stubs]:
                    solution = nbformat.v4.new_code_cell(code)
                    try:
                        client.execute_cell(solution, index)
                    except CellExecutionError as error:
                        raise NotebookRunError(
                            f"{where}: the page's solution, run in place of stub {stubs + 1}, failed:\n"
                            f"{strip_ansi(str(error))}") from None
                stubs += 1
                continue
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as error:
                when = ("" if not solutions else " before the first exercise stub" if stubs == 0
                        else f" after {stubs} stub(s) were solved")
                raise NotebookRunError(f"{where}: failed{when}:\n{strip_ansi(str(error))}") from None
    return stubs


def run_notebook(notebook: nbformat.NotebookNode, cwd: Path, name: str) -> None:
    """Run every cell of ``notebook`` in a fresh kernel in ``cwd``; fail naming the cell."""
    run_learner_notebook(notebook, [], cwd, name)


# --- A JupyterLab server ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """``jupyter lab`` on 127.0.0.1, serving the repository, with Binder's configuration.

    ``binder/postBuild`` runs first with a private Jupyter config directory,
    so the server sees exactly what it writes and nothing from this machine's
    user configuration. Jupytext's server extension is enabled by its
    installation (etc/jupyter/jupyter_server_config.d/jupytext.json), as on
    Binder.
    """

    def __init__(self, workdir: Path, root: Path = ROOT, startup_timeout: float = 180):
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "JUPYTER_CONFIG_DIR": str(workdir / "config"),
                    "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"), **KERNEL_ENV}
        self.post_build = subprocess.run(["bash", str(root / "binder" / "postBuild")], env=self.env,
                                         capture_output=True, text=True, cwd=root)
        self.log_path = workdir / "jupyterlab.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             # no network: no update check, no PyPI extension manager
             "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
             "--LabApp.extension_manager=readonly"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, cwd=root)
        deadline = time.monotonic() + startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n{self.read_log()}")
            try:
                self.get("/api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"jupyter lab did not answer in {startup_timeout} s:\n{self.read_log()}")
                time.sleep(0.5)

    def read_log(self) -> str:
        self.log.flush()
        return self.log_path.read_text()[-4000:]

    def request(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(
            self.url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, kind, raw = response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as error:  # an answer, with an error status
            status, kind, raw = error.code, error.headers.get("Content-Type", ""), error.read()
        return status, (json.loads(raw) if "json" in kind and raw else raw.decode())

    def get(self, path: str):
        return self.request("GET", path)[1]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # the server shuts its kernels down
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class KernelChannel:
    """Jupyter's messaging protocol over the server's kernel websocket (JSON frames)."""

    def __init__(self, lab: JupyterLab, kernel_id: str):
        import websocket

        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{lab.port}/api/kernels/{kernel_id}/channels?session_id={self.session}",
            header=[f"Authorization: token {lab.token}"], timeout=EXEC_TIMEOUT)

    def execute(self, code: str, timeout: float = EXEC_TIMEOUT) -> dict:
        """Run ``code``; return {"status": ..., "ename": ..., "evalue": ..., "stdout": ...}."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": self.session,
                       "msg_type": "execute_request", "version": "5.3",
                       "date": datetime.now(timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": False},
        }))
        result, idle, deadline = {"stdout": ""}, False, time.monotonic() + timeout
        while not (idle and "status" in result):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply within {timeout} s to {first_line(code)!r}")
            message = json.loads(self.ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "execute_reply":
                result.update(status=content["status"], ename=content.get("ename"),
                              evalue=content.get("evalue"))
            elif kind == "stream" and content["name"] == "stdout":
                result["stdout"] += content["text"]
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        return result

    def close(self) -> None:
        self.ws.close()
