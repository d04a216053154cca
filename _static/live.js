// Live cells: run and edit the page's pure-Python cells in the browser, with
// Pyodide served by the site itself (_static/pyodide/). tools/live.py adds
// this file only to pages with live cells, and lists them in
// <script type="application/json" id="live-cells">.
//
// The same file is the Web Worker that holds the page's one Python
// interpreter: the page stays responsive while a cell runs, and Stop (or
// the time limit) ends the worker. Nothing is fetched until the first Run.
(() => {
  "use strict";

  const TIME_LIMIT = 30; // seconds a Run may take before it is stopped
  const START_LIMIT = 90; // seconds Python may take to start
  // A browser starts no worker for a page opened from a file.
  const FROM_FILE = "Live cells need the book served over HTTP: run " +
    "python -m http.server -d _build/html and open http://localhost:8000/.";

  // --- The worker: one Python interpreter ------------------------------------

  // Runs a cell's code in the page's namespace, like a notebook: streams
  // stdout and stderr as they come, shows the value of a last expression
  // (not with a trailing semicolon), and reports an error as the one line
  // `Type: message`, without a traceback.
  const RUNNER = `
import ast, builtins, io, pprint, sys, tokenize

_live_ns = {"__name__": "__main__", "__builtins__": builtins}


class _LiveNames:
    """The cells' top-level names, stored in _live_ns. A value a cell
    replaces is kept, not freed: freeing a long chain of objects (Part I's
    10,000-node graph) recurses once per object, deeper than the browser's
    stack allows, and Pyodide then dies instead of raising an error."""

    def __init__(self, names):
        self.names, self.kept = names, []

    def __getitem__(self, name):
        return self.names[name]

    def __setitem__(self, name, value):
        if name in self.names:
            self.kept.append(self.names[name])
        self.names[name] = value

    def __delitem__(self, name):
        self.kept.append(self.names.pop(name))

    def __contains__(self, name):
        return name in self.names

    def __iter__(self):
        return iter(self.names)

    def __len__(self):
        return len(self.names)

    def keys(self):
        return self.names.keys()

    def get(self, name, default=None):
        return self.names.get(name, default)


_live_names = _LiveNames(_live_ns)


class _LiveStream(io.TextIOBase):
    def __init__(self, name, post):
        self.name, self.post = name, post

    def writable(self):
        return True

    def write(self, text):
        if text:
            self.post(self.name, text)
        return len(text)


def _live_error(error):
    if isinstance(error, SyntaxError):
        where = f" (line {error.lineno})" if error.lineno else ""
        message = f"{error.msg}{where}"
    else:
        message = str(error)
    name = type(error).__name__
    return f"{name}: {message}" if message else name


def _live_silent(code):
    try:
        tokens = [t.string for t in tokenize.generate_tokens(
            io.StringIO(code).readline) if t.type == tokenize.OP
            or t.type in (tokenize.NAME, tokenize.NUMBER, tokenize.STRING)]
    except (tokenize.TokenError, SyntaxError):
        return False
    return bool(tokens) and tokens[-1] == ";"


def _live_repr(value):
    text = repr(value)
    if len(text) > 79 and isinstance(value, (list, tuple, dict, set)):
        text = pprint.pformat(value, width=79, sort_dicts=False)
    return text


def _live_run(code, post, show):
    saved = sys.stdout, sys.stderr
    sys.stdout = _LiveStream("stdout", post)
    sys.stderr = _LiveStream("stderr", post)
    try:
        tree = ast.parse(code, "<cell>")
        last = None
        if (show and tree.body and isinstance(tree.body[-1], ast.Expr)
                and not _live_silent(code)):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, "<cell>", "exec"), _live_ns, _live_names)
        if last is not None:
            value = eval(compile(last, "<cell>", "eval"), _live_ns,
                         _live_names)
            if value is not None:
                _live_names["_"] = value
                return ["value", _live_repr(value)]
        return ["ok", ""]
    except BaseException as error:
        return ["error", _live_error(error)]
    finally:
        sys.stdout, sys.stderr = saved
`;

  function worker() {
    let run = null;
    let ready = null;
    self.onmessage = async ({ data }) => {
      if (data.type === "start") {
        ready = (async () => {
          const { loadPyodide } = await import(data.base + "pyodide.mjs");
          const pyodide = await loadPyodide({ indexURL: data.base });
          pyodide.runPython(RUNNER);
          run = pyodide.globals.get("_live_run");
        })();
        try {
          await ready;
          self.postMessage({ type: "ready" });
        } catch (error) {
          self.postMessage({ type: "failed", text: String(error && error.message || error) });
        }
        return;
      }
      if (data.type === "run") {
        await ready;
        const post = (stream, text) => self.postMessage({ type: "stream", id: data.id, stream, text });
        try {
          const proxy = run(data.code, post, data.show);
          const [status, text] = proxy.toJs();
          proxy.destroy();
          self.postMessage({ type: "done", id: data.id, status, text });
        } catch (error) {
          // Pyodide itself failed (a stack overflow, say): this interpreter
          // is dead, and the page starts another.
          self.postMessage({ type: "done", id: data.id, status: "fatal", text: String(error && error.message || error) });
        }
      }
    };
  }

  if (typeof document === "undefined") {
    worker();
    return;
  }

  // --- The page ----------------------------------------------------------------

  const SCRIPT = document.currentScript.src;
  const BASE = new URL("pyodide/", SCRIPT).href;

  class Stopped extends Error {}
  class Crashed extends Error {}

  // One interpreter for the page, in a worker started by the first Run.
  const python = {
    worker: null,
    starting: null,
    pending: new Map(), // run id -> {resolve, reject, onStream}
    nextId: 0,

    start() {
      if (this.starting) return this.starting;
      if (location.protocol === "file:") return Promise.reject(new Error(FROM_FILE));
      // Pyodide runs only in a module worker.
      const worker = new Worker(SCRIPT, { type: "module", name: "live-python" });
      this.worker = worker;
      this.starting = new Promise((resolve, reject) => {
        this.rejectStart = reject;
        const timer = setTimeout(() => reject(new Error(
          `Python did not start within ${START_LIMIT} s.`)), START_LIMIT * 1000);
        worker.onmessage = ({ data }) => {
          if (data.type === "ready") {
            clearTimeout(timer);
            resolve();
          } else if (data.type === "failed") {
            clearTimeout(timer);
            reject(new Error(`Python did not start: ${data.text}`));
          } else {
            const run = this.pending.get(data.id);
            if (!run) return;
            if (data.type === "stream") {
              run.onStream(data.stream, data.text);
            } else if (data.type === "done") {
              this.pending.delete(data.id);
              run.resolve({ status: data.status, text: data.text });
            }
          }
        };
        worker.onerror = (event) => {
          clearTimeout(timer);
          event.preventDefault();
          const message = event.message || "the worker failed";
          reject(new Error(`Python did not start: ${message}`));
          if (this.pending.size) stopRun(`Python in the browser failed (${message}).`);
        };
      });
      worker.postMessage({ type: "start", base: BASE });
      this.starting.catch(() => this.stop());
      return this.starting;
    },

    run(code, show, onStream) {
      const id = this.nextId++;
      return new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject, onStream });
        this.worker.postMessage({ type: "run", id, code, show });
      });
    },

    // Ends the interpreter: every cell has to run again.
    stop() {
      if (this.worker) this.worker.terminate();
      this.worker = null;
      this.starting = null;
      if (this.rejectStart) this.rejectStart(new Stopped());
      this.rejectStart = null;
      for (const run of this.pending.values()) run.reject(new Stopped());
      this.pending.clear();
      for (const cell of cells) cell.ran = null;
    },
  };

  let cells = [];
  let busy = false;

  // The code in an editable <pre>: its text, with a line break for each
  // <br> or block an edit may have put there. (innerText would depend on
  // the layout: it is empty inside a folded solution.)
  function codeOf(pre) {
    let text = "";
    const walk = (node) => {
      for (const child of node.childNodes) {
        if (child.nodeType === Node.TEXT_NODE) {
          text += child.data;
        } else if (child.nodeName === "BR") {
          text += "\n";
        } else if (child.nodeType === Node.ELEMENT_NODE) {
          if (/^(DIV|P)$/.test(child.nodeName) && text && !text.endsWith("\n")) text += "\n";
          walk(child);
        }
      }
    };
    walk(pre);
    return text.replace(/\u00a0/g, " ");
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function button(label, className, onClick) {
    const node = element("button", `live-button ${className}`, label);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  class Cell {
    constructor(entry, root) {
      Object.assign(this, entry);
      this.root = root;
      this.ran = null; // the code this interpreter last ran for the cell
      this.pre = root && (root.querySelector(".cell_input pre") || root.querySelector("pre"));
      if (this.code === undefined) this.code = this.pre ? codeOf(this.pre) : "";
      this.original = this.code;
      if (!this.hidden && this.pre) this.makeLive();
    }

    currentCode() {
      return this.hidden || !this.pre ? this.code : codeOf(this.pre);
    }

    isFresh() {
      return this.ran !== null && this.ran === this.currentCode();
    }

    makeLive() {
      const pre = this.pre;
      this.originalHTML = pre.innerHTML;
      try {
        pre.contentEditable = "plaintext-only";
      } catch {
        pre.contentEditable = "true";
      }
      pre.spellcheck = false;
      pre.setAttribute("role", "textbox");
      pre.setAttribute("aria-multiline", "true");
      const what = this.kind === "skeleton" ? "Exercise code" : "Code";
      pre.setAttribute("aria-label", `${what}, editable: change it, then Run (Shift+Enter)`);
      pre.setAttribute("autocapitalize", "off");
      pre.setAttribute("autocorrect", "off");
      pre.classList.add("live-code");
      pre.addEventListener("keydown", (event) => this.onKey(event));

      this.runButton = button("Run", "live-run", () => runCell(this));
      this.stopButton = button("Stop", "live-stop", () => stopRun("Stopped."));
      this.stopButton.hidden = true;
      this.resetButton = button("Reset", "live-reset", () => this.reset());
      this.resetButton.setAttribute("aria-label", "Reset");
      this.resetButton.title = "Put the original code back";
      this.status = element("span", "live-status");
      this.status.setAttribute("role", "status");
      const controls = element("div", "live-controls");
      controls.append(this.runButton, this.stopButton, this.resetButton, this.status);
      // Always there (empty, it takes no room), so that screen readers
      // announce what a run adds to it.
      this.output = element("div", "live-output");
      this.output.setAttribute("aria-live", "polite");

      const input = this.kind === "skeleton" ? this.root : this.root.querySelector(":scope > .cell_input") || this.pre.closest(".cell_input");
      input.after(controls);
      controls.after(this.output);
      this.staticOutput = this.kind === "skeleton" ? null : this.root.querySelector(":scope > .cell_output");
      // Warm up on the way to the first click: Python starts while the
      // pointer is on its way or the keyboard is on the button.
      const warm = () => { python.start().catch(() => {}); };
      this.runButton.addEventListener("pointerenter", warm, { once: true });
      this.runButton.addEventListener("focus", warm, { once: true });
    }

    onKey(event) {
      if (event.key === "Enter" && (event.shiftKey || event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        runCell(this);
      } else if (event.key === "Enter" && !event.altKey) {
        // A new line keeps the indentation (one level more after a colon).
        const selection = window.getSelection();
        if (!selection.rangeCount) return;
        const range = selection.getRangeAt(0).cloneRange();
        range.setStart(this.pre, 0);
        const holder = document.createElement("div");
        holder.append(range.cloneContents());
        const before = codeOf(holder);
        const line = before.slice(before.lastIndexOf("\n") + 1);
        let indent = line.match(/^ */)[0];
        if (/:\s*(#.*)?$/.test(line)) indent += "    ";
        event.preventDefault();
        document.execCommand("insertText", false, "\n" + indent);
      }
    }

    reset() {
      if (this.pre) this.pre.innerHTML = this.originalHTML;
      this.clearOutput();
      if (this.staticOutput) this.staticOutput.hidden = false;
      this.status.textContent = "Original code back.";
    }

    clearOutput() {
      this.output.replaceChildren();
      this.streams = null;
    }

    showOutput() {
      if (this.staticOutput) this.staticOutput.hidden = true;
    }

    write(stream, text) {
      const last = this.output.lastElementChild;
      if (last && last.dataset.stream === stream) {
        last.textContent += text;
      } else {
        const block = element("pre", `live-${stream}`, text);
        block.dataset.stream = stream;
        this.output.append(block);
      }
    }

    result(kind, text) {
      this.output.append(element("pre", `live-${kind}`, text));
    }
  }

  // Runs the code of `cell` in the interpreter; shows what it prints in
  // `shown` (a Cell, or null to run quietly).
  async function execute(cell, shown, code = cell.currentCode()) {
    const result = await python.run(code, shown !== null, (stream, text) => {
      if (shown) shown.write(stream, text);
    });
    if (result.status === "fatal") {
      python.stop();
      throw new Crashed(/call stack/i.test(result.text)
        ? "RecursionError: the code went deeper than Python in the browser can go (its stack is smaller than on a desktop)"
        : `Python in the browser failed: ${result.text.split("\n")[0]}`);
    }
    cell.ran = code;
    if (shown && result.status === "value") shown.result("value", result.text);
    if (shown && result.status === "error") shown.result("error", result.text);
    return result;
  }

  function setBusy(target, on) {
    busy = on;
    for (const cell of cells) {
      if (!cell.runButton) continue;
      cell.runButton.disabled = on;
      cell.stopButton.hidden = !(on && cell === target);
    }
  }

  let stopTimer = null;
  let stopMessage = null;

  function stopRun(message) {
    stopMessage = message;
    python.stop();
  }

  async function runCell(target) {
    if (busy) return;
    setBusy(target, true);
    target.clearOutput();
    target.showOutput();
    const started = performance.now();
    target.status.textContent = python.worker ? "Running…" : "Starting Python (the first run takes a few seconds)…";
    stopMessage = null;
    try {
      await python.start();
      target.status.textContent = "Running…";
      stopTimer = setTimeout(() => stopRun(
        `Stopped after ${TIME_LIMIT} s: the code ran too long.`), TIME_LIMIT * 1000);
      // The live cells above that have not run with their current code run
      // first, once, quietly; a skeleton's exercise skips the solution.
      const skip = new Set(target.skip || []);
      for (const cell of cells) {
        if (cell === target) break;
        if (cell.kind === "skeleton" || skip.has(cell.n) || cell.isFresh()) continue;
        // A solution whose exercise skeleton ran is replaced by the reader's code.
        if (cell.replacedBy && cell.replacedBy.ran !== null) continue;
        const result = await execute(cell, null);
        if (result.status === "error" && !cell.raises) {
          if (cell.output) {
            cell.clearOutput();
            cell.showOutput();
            cell.result("error", result.text);
            cell.status.textContent = "This cell failed when a cell below it ran.";
          }
          target.result("error", `A cell above failed: ${result.text}`);
          target.status.textContent = "Not run: a cell above failed.";
          return;
        }
      }
      target.replacedBy = null;
      const result = await execute(target, target);
      for (const n of skip) {
        const solution = cells.find((cell) => cell.n === n);
        if (solution) solution.replacedBy = target;
      }
      if (target.kind === "skeleton" && result.status !== "error") {
        // The exercise's self-check, against the reader's code.
        await execute(target.checkCell, target);
      }
      const seconds = (performance.now() - started) / 1000;
      target.status.textContent = `Ran in ${seconds.toFixed(seconds < 10 ? 2 : 1)} s.`;
    } catch (error) {
      if (error instanceof Crashed) {
        target.result("error", error.message);
        target.status.textContent = "Python was restarted: the next Run starts it again.";
      } else if (error instanceof Stopped) {
        target.result("error", `${stopMessage || "Stopped."} Python was restarted: the next Run starts it again and runs the cells above once more.`);
        target.status.textContent = "Stopped.";
      } else if (location.protocol === "file:") {
        target.status.textContent = FROM_FILE;
      } else {
        target.result("error", String(error.message || error));
        target.status.textContent = "Python is not available.";
      }
    } finally {
      clearTimeout(stopTimer);
      setBusy(target, false);
    }
  }

  function setUp() {
    const data = document.getElementById("live-cells");
    if (!data) return;
    const page = JSON.parse(data.textContent);
    const prelude = { n: -1, kind: "prelude", hidden: true, raises: false, code: page.prelude || "" };
    cells = [];
    if (prelude.code) cells.push(new Cell(prelude, null));
    for (const entry of page.cells) {
      const root = document.querySelector(`.live-cell-${entry.n}`);
      if (root) cells.push(new Cell(entry, root));
    }
    const byNumber = new Map(cells.map((cell) => [cell.n, cell]));
    for (const cell of cells) {
      if (cell.kind === "skeleton") cell.checkCell = byNumber.get(cell.check);
    }
    // One hint per page, by its first live cell.
    const first = cells.find((cell) => cell.status);
    if (first) {
      first.status.textContent = location.protocol === "file:" ? FROM_FILE
        : "Python runs in your browser: edit the code, then Run.";
    }
    document.documentElement.classList.add("live-ready");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
