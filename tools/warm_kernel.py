"""Fresh IPython kernels without paying for ``import torch`` every time.

A page of this book spends most of its execution time before its first line
runs: starting a Python process, importing ipykernel and IPython, then
``import torch`` and matplotlib (about 2.5 s of CPU a page, measured with
``python benchmarks/build.py``). This module pays that once per build:

* ``serve``: a *template* process imports those libraries (only imports:
  no kernel, no event loop, no torch operation) and waits on a Unix socket.
* ``proxy``: what the kernel spec runs instead of ``python -m
  ipykernel_launcher``. It asks the template to fork a child, hands it its
  own stdin/stdout/stderr, working directory, environment and arguments,
  and the child then starts a kernel exactly as ``ipykernel_launcher``
  does. The proxy stands for the kernel towards jupyter_client: it forwards
  signals (interrupt, terminate) to it and exits with its exit status.

Every page still gets a new process and a new IPython shell with an empty
namespace: pages never see each other's variables. What a page can tell
apart from a cold kernel is only that some library modules are already in
``sys.modules`` (so its imports are instant); ``tests/test_fast_build.py``
compares what a probe page sees in both kinds of kernel. To keep that
true, the template refuses (and the proxy starts an ordinary kernel) when a
request's environment differs from the template's in anything but the
variables jupyter_client sets per kernel, or when the working directory
holds a file that would shadow a preloaded module.

This module is run as a script (``python tools/warm_kernel.py ...``) and must
import only the standard library at module level: the proxy starts with
``python -I -S``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import select
import signal
import socket
import sys

# What (almost) every page imports, and most of the kernel. Only modules
# whose import has no side effect a page could notice: no pyplot (it picks
# its backend when imported), no matplotlib_inline (it hooks into IPython).
PRELOAD = (
    "numpy",
    "torch",
    "matplotlib",
    "matplotlib.figure",
    "matplotlib.font_manager",
    "IPython",
    "ipykernel.ipkernel",
)
# Modules that read per-kernel variables when imported (ipykernel.kernelapp
# reads JPY_PARENT_PID into a class attribute, pydevd reads
# PYDEVD_DISABLE_FILE_VALIDATION): each kernel must import them itself.
NOT_PRELOADED = ("ipykernel.kernelapp", "debugpy")
# ipykernel sets this before matplotlib is imported (kernelapp.init_gui_pylab);
# matplotlib reads it at import, so the template sets it the same way first.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
# Set by jupyter_client for each kernel; nothing preloaded reads them.
PER_KERNEL_VARIABLES = ("JPY_PARENT_PID", "JPY_SESSION_NAME", "JPY_INTERRUPT_EVENT",
                        "IPY_INTERRUPT_EVENT", "PYDEVD_DISABLE_FILE_VALIDATION")
# Signals jupyter_client sends to a kernel, forwarded by the proxy.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2)


def send_json(sock: socket.socket, data: dict, fds: list[int] = ()) -> None:
    payload = json.dumps(data).encode() + b"\n"
    if fds:
        sent = socket.send_fds(sock, [payload], list(fds))
        sock.sendall(payload[sent:])
    else:
        sock.sendall(payload)


def read_json(sock: socket.socket, with_fds: bool = False) -> tuple[dict | None, list[int]]:
    """Read one newline-terminated JSON message (None on end of file)."""
    data, fds = b"", []
    while not data.endswith(b"\n"):
        if with_fds and not fds:
            chunk, fds, _, _ = socket.recv_fds(sock, 65536, 3)
        else:
            chunk = sock.recv(65536)
        if not chunk:
            return None, fds
        data += chunk
    return json.loads(data), fds


def receive(connection: socket.socket) -> bytes:
    """A byte from a proxy's connection; b"" once the proxy has gone."""
    try:
        return connection.recv(1)
    except OSError:
        return b""


# --- The template --------------------------------------------------------------


class Template:
    def __init__(self, socket_path: str):
        self.sys_path = list(sys.path)  # as a cold `python -m ...` would have it
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(socket_path)
        self.listener.listen(64)
        # Requests wait in the backlog while the imports below run.
        print("listening", flush=True)
        os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
        self.env = dict(os.environ)
        self.preloaded = []
        for name in PRELOAD:
            try:
                importlib.import_module(name)
            except Exception:  # an ordinary kernel would meet the same error later
                continue
            self.preloaded.append(name)
        self.shadowed = {name.split(".")[0] for name in self.preloaded}
        self.leaked = [name for name in NOT_PRELOADED if name in sys.modules]
        # kernel pid -> the connection to its proxy (None once the proxy has gone)
        self.children: dict[int, socket.socket | None] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def refusal(self, request: dict) -> str | None:
        """Why this request needs an ordinary kernel (None if a warm one is identical)."""
        if self.leaked:
            return f"the template has imported {self.leaked}, which must be imported per kernel"
        env = {k: v for k, v in request["env"].items() if k not in PER_KERNEL_VARIABLES}
        env.setdefault("MPLBACKEND", INLINE_BACKEND)
        ours = {k: v for k, v in self.env.items() if k not in PER_KERNEL_VARIABLES}
        if env != ours:
            changed = sorted(set(env.items()) ^ set(ours.items()))
            return f"environment differs from the template's: {sorted({k for k, _ in changed})}"
        if env.get("PYTHONHASHSEED", "random") == "random":
            # A forked child keeps the template's hash seed; a cold kernel draws its own.
            return "PYTHONHASHSEED is not fixed"
        try:
            entries = os.listdir(request["cwd"])
        except OSError as error:
            return str(error)
        shadowing = {e.removesuffix(".py") for e in entries} & self.shadowed
        if shadowing:
            return f"{request['cwd']} holds {sorted(shadowing)}, which would shadow preloaded modules"
        return None

    def serve(self) -> None:
        while True:
            connections = [c for c in self.children.values() if c is not None]
            readable, _, _ = select.select([self.listener, self.wake_r, sys.stdin, *connections], [], [])
            if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1024):
                return  # whoever started us has gone: stop
            if self.wake_r in readable:
                os.read(self.wake_r, 1024)
                self.reap()
            for pid, connection in list(self.children.items()):
                if connection is not None and connection in readable and not receive(connection):
                    # The proxy has gone (killed): take its kernel with it.
                    connection.close()
                    self.children[pid] = None
                    self.kill(pid)
            if self.listener in readable:
                connection, _ = self.listener.accept()
                self.start_kernel(connection)

    def start_kernel(self, connection: socket.socket) -> None:
        connection.settimeout(30)  # the proxy sends its request as soon as it connects
        try:
            request, fds = read_json(connection, with_fds=True)
        except (OSError, ValueError):
            connection.close()
            return
        connection.settimeout(None)
        reason = "no request" if request is None else self.refusal(request)
        if reason or len(fds) != 3:
            send_json(connection, {"fallback": reason or "expected 3 file descriptors"})
            for fd in fds:
                os.close(fd)
            connection.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self.become_kernel(request, fds, connection)  # never returns
        for fd in fds:
            os.close(fd)
        self.children[pid] = connection
        send_json(connection, {"pid": pid})

    def become_kernel(self, request: dict, fds: list[int], connection: socket.socket) -> None:
        code = 1
        try:
            # Undo everything the template set up, then do what a cold start does.
            for other in self.children.values():
                if other is not None:
                    other.close()
            connection.close()
            self.listener.close()
            signal.set_wakeup_fd(-1)
            os.close(self.wake_r)
            os.close(self.wake_w)
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.setsid()  # jupyter_client starts kernels in a new session
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            launcher = importlib.util.find_spec("ipykernel_launcher").origin
            sys.argv = [launcher, *request["argv"]]
            sys.orig_argv = [sys.executable, "-m", "ipykernel_launcher", *request["argv"]]
            # ipykernel_launcher drops sys.path[0] (the working directory) before
            # importing ipykernel; ours is this script's folder.
            sys.path[:] = self.sys_path[1:]
            # A cold import seeds these generators from the OS; a forked child
            # would otherwise share the template's seed with its siblings.
            # (Python's random module reseeds itself after a fork.)
            if "numpy" in sys.modules:
                sys.modules["numpy"].random.seed()
            if "torch" in sys.modules:
                sys.modules["torch"].seed()
            from ipykernel import kernelapp

            kernelapp.launch_new_instance()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            import atexit
            import threading

            threading._shutdown()  # as at the end of an ordinary interpreter:
            atexit._run_exitfuncs()  # join non-daemon threads, run exit functions
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            os._exit(code)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.children.pop(pid, None)
            if connection is not None:
                try:
                    send_json(connection, {"exit": os.waitstatus_to_exitcode(status)})
                except OSError:
                    pass
                connection.close()

    def kill(self, pid: int) -> None:
        """Kill a kernel and whatever it started (its session; itself, if it
        has not made one yet)."""
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
                return
            except OSError:
                continue

    def stop(self) -> None:
        for pid in list(self.children):
            self.kill(pid)


def serve(socket_path: str) -> None:
    template = Template(socket_path)
    try:
        template.serve()
    finally:
        template.stop()
        os.unlink(socket_path)


# --- The proxy -------------------------------------------------------------------


def proxy(socket_path: str, kernel_args: list[str]) -> None:
    request = {"argv": kernel_args, "cwd": os.getcwd(), "env": dict(os.environ)}
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(socket_path)
        send_json(connection, request, [0, 1, 2])
        reply, _ = read_json(connection)
    except OSError as error:
        reply = {"fallback": str(error)}
    if reply is None or "fallback" in reply:
        # An ordinary kernel, started exactly as the python3 kernel spec does.
        connection.close()
        os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *kernel_args])
    pid = reply["pid"]

    def forward(signum, _frame):
        try:
            os.killpg(pid, signum)
        except OSError:
            pass

    for signum in FORWARDED:
        signal.signal(signum, forward)
    message, _ = read_json(connection)
    code = 1 if message is None else message["exit"]
    if code < 0:  # killed by a signal: die the same way
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


# --- The client side: start a template, and kernel managers that use it -----------


class WarmKernels:
    """A running template; ``manager_class`` makes nbclient start kernels from it.

    Use as a context manager. Kernels whose kernel spec is not the plain
    ipykernel one (``python -m ipykernel_launcher -f {connection_file}``)
    start as usual.
    """

    def __init__(self, env: dict | None = None):
        """``env``: the environment the kernels will be started with (default:
        this process's); a kernel started with another one gets a cold start."""
        import subprocess
        import tempfile

        self.folder = tempfile.mkdtemp(prefix="warm-kernels-")
        self.socket_path = os.path.join(self.folder, "template.sock")
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "serve", self.socket_path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )
        line = self.process.stdout.readline()
        if line.strip() != b"listening":
            self.close()
            raise RuntimeError(f"the kernel template did not start: {line!r}")
        self.manager_class = warm_manager_class(self.socket_path)

    def close(self) -> None:
        import shutil

        if self.process.poll() is None:
            self.process.stdin.close()  # the template stops on end of file
            try:
                self.process.wait(10)
            except Exception:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "WarmKernels":
        return self

    def __exit__(self, *_) -> None:
        self.close()


def is_plain_ipykernel(argv: list[str]) -> bool:
    python = {"python", f"python{sys.version_info[0]}", "python%i.%i" % sys.version_info[:2],
              sys.executable}
    return len(argv) == 5 and argv[0] in python and argv[1:4] == ["-m", "ipykernel_launcher", "-f"]


def warm_manager_class(socket_path: str):
    from jupyter_client.manager import AsyncKernelManager, KernelManager

    class WarmKernelManager(AsyncKernelManager):
        """jupyter_client's manager, with the proxy as the kernel command."""

        _warm_spec = None

        @property
        def kernel_spec(self):
            if self._warm_spec is None:
                spec = KernelManager.kernel_spec.fget(self)
                if spec is not None and is_plain_ipykernel(spec.argv):
                    spec = type(spec)(**{**spec.to_dict(), "resource_dir": spec.resource_dir})
                    spec.argv = [sys.executable, "-I", "-S", os.path.abspath(__file__), "proxy",
                                 socket_path, *spec.argv[3:]]
                self._warm_spec = spec
            return self._warm_spec

    return WarmKernelManager


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2])
    elif sys.argv[1:2] == ["proxy"]:
        proxy(sys.argv[2], sys.argv[3:])
    else:
        sys.exit("usage: warm_kernel.py serve SOCKET | proxy SOCKET KERNEL-ARGS...")
