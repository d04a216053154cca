"""Every exercise has a hidden worked solution and a self-check that can tell.

The structure CONTRIBUTING.md asks for, checked on the MyST source of each
page:

- every ``{exercise}`` has a ``:label:``;
- it is followed (setup code cells and prose may come between) by a
  ``{solution-start} <label>`` with ``:class: dropdown``, at least one code
  cell (the worked solution, which the page test executes), and a
  ``{solution-end}``;
- after the ``{solution-end}``, before the next exercise or the end of the
  page, comes a code cell, the self-check, which can fail: it has an
  ``assert``, a ``raise`` or an ``assert_*`` call;
- the self-check compares with an *independent* computation, not with the
  answer itself. This is checked with a heuristic, explained at
  ``independent_checks``.

The page tests execute every self-check against the worked solution, so
a self-check that fails on the right answer is caught there; this file
catches the self-check that would *pass on a wrong answer* by construction.
"""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import pytest

from tools.pages import ROOT

BOOK = ROOT / "book"
from myst_source import call_name, Block, Page, parse, python_tree, read_page

CHECK_CALL = re.compile(r"^assert|close$|equal$")  # assert_close, isclose, allclose, torch.equal ...
BUILTINS = set(dir(builtins))


def pages_with_exercises() -> list[Path]:
    return sorted(p for p in BOOK.rglob("*.md")
                  if "_build" not in p.parts and "{exercise}" in p.read_text(encoding="utf-8"))


def where(page: Page, line: int) -> str:
    try:
        return f"{page.path.relative_to(ROOT)}:{line}"
    except ValueError:
        return f"{page.path}:{line}"


def exercise_problems(page: Page) -> list[str]:
    """Every way the page's exercises depart from the required structure."""
    blocks = [b for b in page.blocks
              if b.name in ("exercise", "solution-start", "solution-end", "solution", "code-cell")]
    modules = imported_names(page)
    problems = []
    for index, block in enumerate(blocks):
        if block.name == "solution":
            problems.append(f"{where(page, block.line)}: use a gated {{solution-start}}/"
                            "{solution-end} pair (its code is executed), not {solution}")
        if block.name == "solution-start":
            before = [b for b in blocks[:index] if b.name in ("exercise", "solution-start")]
            if not before or before[-1].name != "exercise" \
                    or before[-1].options.get("label") != block.argument:
                problems.append(f"{where(page, block.line)}: {{solution-start}} {block.argument} "
                                "does not follow the exercise it names")
        if block.name != "exercise":
            continue
        label = block.options.get("label", "")
        name = f"{where(page, block.line)}: exercise {label or '(no label)'}"
        if not label:
            problems.append(f"{name}: the exercise has no :label:")
        following = blocks[index + 1:]
        end = next((i for i, b in enumerate(following) if b.name == "exercise"), len(following))
        own = following[:end]  # this exercise's blocks, up to the next exercise
        start = next((i for i, b in enumerate(own) if b.name == "solution-start"), None)
        if start is None:
            problems.append(f"{name}: no {{solution-start}} {label} before the next exercise")
            continue
        if own[start].argument != label:
            problems.append(f"{name}: its {{solution-start}} names {own[start].argument!r}")
        if own[start].options.get("class") != "dropdown":
            problems.append(f"{name}: its {{solution-start}} needs ':class: dropdown' (hidden)")
        stop = next((i for i, b in enumerate(own) if b.name == "solution-end" and i > start), None)
        if stop is None:
            problems.append(f"{name}: no {{solution-end}} after its {{solution-start}}")
            continue
        solution = [b for b in own[start + 1:stop] if b.name == "code-cell"]
        if not solution:
            problems.append(f"{name}: the worked solution has no code cell")
            continue
        check = next((b for b in own[stop + 1:] if b.name == "code-cell"), None)
        if check is None:
            problems.append(f"{name}: no self-check code cell after its {{solution-end}}")
            continue
        problems += [f"{name}, self-check at line {check.line}: {p}"
                     for p in self_check_problems(solution, check, modules)]
    return problems


def imported_names(page: Page) -> set[str]:
    names = set()
    for cell in page.code_cells:
        for node in ast.walk(safe_tree(cell)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def safe_tree(cell: Block) -> ast.Module:
    try:
        return python_tree(cell.source)
    except SyntaxError:  # the page test reports it
        return ast.Module(body=[], type_ignores=[])


def self_check_problems(solution: list[Block], check: Block, modules: set[str]) -> list[str]:
    tree = safe_tree(check)
    if not any(isinstance(n, (ast.Assert, ast.Raise))
               or isinstance(n, ast.Call) and call_name(n.func).startswith("assert")
               for n in ast.walk(tree)):
        return ["it has no assert, raise or assert_* call, so it cannot fail"]
    answers = set()
    for cell in solution:
        answers |= bound_names(safe_tree(cell))
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} & answers
    if not used:
        return [f"it never uses what the solution defines ({', '.join(sorted(answers))})"]
    if not independent_checks(tree, answers, modules):
        return ["no assertion compares the solution's values with something computed "
                "without them (it compares the answer with itself, or with a constant)"]
    return []


# --- the independence heuristic ------------------------------------------------
#
# The self-check's statements are followed in order, giving each name two
# sets: the solution names its value was computed from (its *taint*), and
# the other names that went into it (its *independent inputs*). Calling a
# solution function passes on the function's taint and drops the arguments
# (test inputs are not a reference value), and a statement such as
# ``loss(normalise(v)).backward()`` taints the names handed to the solution
# function (``v``, whose ``.grad`` it fills). A check is an assert's
# condition, an ``if ...: raise`` condition, or the positional arguments of
# a call to ``assert_*``, ``*close`` or ``*equal``; keyword arguments
# (tolerances, messages) and assert messages are left out. A check is
# *independent* when it depends on the solution and also on an independent
# input or on a second solution name. So ``assert answer == answer``,
# ``expected = answer * 1; assert isclose(answer, expected)``,
# ``assert f(x) == f(x)`` and ``assert answer == 14.0`` (a constant typed by
# hand) are not, while ``isclose(answer, formula(x0))``,
# ``0.1 < best_h / h_theory < 10`` and ``allclose(v.grad, finite_diff)`` are.
# It is a heuristic: ``abs(answer - answer) < tol`` fools it.

Flow = tuple  # (taint: frozenset of solution names, independent inputs: frozenset)
NOTHING: Flow = (frozenset(), frozenset())


def join(*flows: Flow) -> Flow:
    return (frozenset().union(*(f[0] for f in flows)), frozenset().union(*(f[1] for f in flows)))


class SelfCheck:
    """Follow a self-check cell and collect the flows of its checks."""

    def __init__(self, answers: set[str], ignored: set[str]):
        self.answers, self.ignored = answers, ignored
        self.state: dict[str, Flow] = {}
        self.functions: dict[str, ast.FunctionDef] = {}
        self.checks: list[Flow] = []
        self.depth = 0

    # values
    def name(self, name: str) -> Flow:
        if name in self.ignored:
            return NOTHING
        if name in self.state:
            taint, inputs = self.state[name]
            return (taint, inputs) if taint else (frozenset(), frozenset({name}))
        if name in self.answers:
            return (frozenset({name}), frozenset())
        return (frozenset(), frozenset({name}))

    def value(self, node: ast.AST | None, keywords: bool = True) -> Flow:
        if node is None:
            return NOTHING
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.Call):
            function = self.value(node.func)
            arguments = [self.value(a) for a in node.args]
            if keywords:
                arguments += [self.value(k.value) for k in node.keywords]
            if function[0]:  # a solution function: its result is the solution's
                return join((function[0], frozenset()), *((a[0], frozenset()) for a in arguments))
            return join(function, *arguments)
        if isinstance(node, ast.Lambda):
            parameters = {a.arg for a in node.args.args}
            taint, inputs = self.value(node.body)
            return taint, inputs - parameters
        return join(NOTHING, *(self.value(child, keywords) for child in ast.iter_child_nodes(node)
                               if not isinstance(child, ast.keyword) or keywords))

    # bindings
    def bind(self, target: ast.AST, flow: Flow) -> None:
        if isinstance(target, ast.Name):
            self.state[target.id] = flow
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.bind(element, flow)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, flow)
        elif isinstance(target, (ast.Subscript, ast.Attribute)):  # x[i] = ..., x.a = ...: x changes
            root = target
            while isinstance(root, (ast.Subscript, ast.Attribute)):
                root = root.value
            if isinstance(root, ast.Name):
                self.state[root.id] = join(self.state.get(root.id, NOTHING), flow)

    def assign(self, target: ast.AST, value: ast.AST) -> None:
        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
                and len(target.elts) == len(value.elts):
            flows = [self.value(v) for v in value.elts]  # all right-hand sides first
            for element, flow in zip(target.elts, flows):
                self.bind(element, flow)
        else:
            self.bind(target, self.value(value))

    def iterate(self, target: ast.AST, iterable: ast.AST) -> None:
        rows = iterable.elts if isinstance(iterable, (ast.List, ast.Tuple, ast.Set)) else None
        if rows and isinstance(target, (ast.Tuple, ast.List)) and all(
                isinstance(r, (ast.Tuple, ast.List)) and len(r.elts) == len(target.elts) for r in rows):
            for position, element in enumerate(target.elts):  # for name, mine, ref in [(...), ...]
                self.bind(element, join(NOTHING, *(self.value(r.elts[position]) for r in rows)))
        else:
            self.bind(target, self.value(iterable))

    def mutate(self, statement: ast.AST) -> None:
        """Names handed to a solution function in a statement may be changed by it."""
        for node in ast.walk(statement):
            if not isinstance(node, ast.Call):
                continue
            taint = self.value(node.func)[0]
            if not taint:
                continue
            for argument in node.args:
                root = argument
                while isinstance(root, (ast.Subscript, ast.Attribute)):
                    root = root.value
                if isinstance(root, ast.Name) and root.id not in self.ignored:
                    self.state[root.id] = join(self.state.get(root.id, NOTHING), (taint, frozenset()))

    def call_local_functions(self, statement: ast.AST) -> None:
        """Follow a call to a function defined in the cell with its arguments bound."""
        if self.depth > 3:
            return
        for node in ast.walk(statement):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in self.functions:
                function = self.functions[node.func.id]
                saved = dict(self.state)
                for parameter, argument in zip(function.args.args, node.args):
                    self.state[parameter.arg] = self.value(argument)
                self.depth += 1
                self.statements(function.body)
                self.depth -= 1
                self.state = saved

    # statements
    def statements(self, body: list[ast.stmt]) -> None:
        for statement in body:
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Assert):
            self.checks.append(self.value(node.test, keywords=False))
        elif isinstance(node, ast.If):
            if any(isinstance(s, ast.Raise) for s in node.body):
                self.checks.append(self.value(node.test, keywords=False))
            self.statements(node.body)
            self.statements(node.orelse)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                self.assign(target, node.value)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            self.bind(node.target, join(self.value(node.target), self.value(node.value)))
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            for _ in range(2):  # twice: values may flow from one iteration to the next
                self.iterate(node.target, node.iter)
                self.statements(node.body)
            self.statements(node.orelse)
        elif isinstance(node, ast.While):
            for _ in range(2):
                self.statements(node.body)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, self.value(item.context_expr))
            self.statements(node.body)
        elif isinstance(node, ast.Try):
            for part in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                self.statements(part)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.functions[node.name] = node
            parameters = {a.arg for a in node.args.args + node.args.kwonlyargs}
            taint = join(NOTHING, *(self.value(s) for s in node.body))[0]
            if taint - parameters:
                self.state[node.name] = (frozenset(taint - parameters), frozenset())
            self.statements(node.body)  # its checks, with the parameters unknown
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            if CHECK_CALL.search(call_name(node.value.func)):
                self.checks.append(join(NOTHING, *(self.value(a) for a in node.value.args)))
            self.mutate(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.call_local_functions(node)


def independent_checks(tree: ast.Module, answers: set[str], modules: set[str]) -> list[Flow]:
    cell = SelfCheck(answers, (modules | BUILTINS) - answers)
    cell.statements(tree.body)
    return [(taint, inputs) for taint, inputs in cell.checks
            if taint and (len(taint) >= 2 or inputs)]


def bound_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


@pytest.mark.parametrize("path", pages_with_exercises(), ids=lambda p: p.name)
def test_exercises_have_solution_and_independent_self_check(path):
    problems = exercise_problems(read_page(path))
    if problems:
        pytest.fail("exercise structure (see CONTRIBUTING.md, Exercises):\n" + "\n".join(problems),
                    pytrace=False)


def test_there_are_exercises():
    assert len(pages_with_exercises()) >= 8


# --- the check itself, on a small made-up page -------------------------------------

EXERCISE = """\
```{{exercise}}
:label: ex-{name}

Compute the answer.
```

```{{solution-start}} ex-{name}
:class: dropdown
```

```{{code-cell}} ipython3
answer = 3 * 2.0**2 + 2.0


def solve(t):
    return t * answer
```

```{{solution-end}}
```

```{{code-cell}} ipython3
{check}
```
"""


@pytest.mark.parametrize("check, message", [
    ("expected = 14.0\nassert math.isclose(answer, expected_from_formula(2.0))", None),
    ("for name, mine, ref in [('a', answer, reference())]:\n    assert mine == ref", None),
    ("torch.testing.assert_close(answer, finite_difference(2.0))", None),
    ("print(answer)", "cannot fail"),
    ("assert math.isclose(other, 14.0)", "never uses what the solution defines"),
    ("assert answer == answer", "compares the answer with itself"),
    ("expected = answer * 1\nassert math.isclose(answer, expected, rel_tol=tolerance)",
     "compares the answer with itself"),
    ("assert answer == 14.0, f'expected {reference}'", "compares the answer with itself"),
    ("ratio = answer / theory\nassert 0.1 < ratio < 10", None),
    ("v = start.clone()\nsolve(v).backward()\nassert torch.allclose(v.grad, finite_differences)", None),
    ("expected = solve(x)\nassert math.isclose(solve(x), expected)", "compares the answer with itself"),
    ("def close_to(value):\n    assert math.isclose(value, reference)\nclose_to(answer)", None),
])
def test_the_self_check_heuristic(check, message):
    page = parse("```{code-cell} ipython3\nimport math\nimport torch\n```\n\n"
                 + EXERCISE.format(name="sample", check=check), ROOT / "sample.md")
    problems = exercise_problems(page)
    if message is None:
        assert problems == []
    else:
        assert len(problems) == 1 and message in problems[0], problems


def test_the_structure_checks():
    good = EXERCISE.format(name="one", check="assert answer == reference()")
    assert exercise_problems(parse(good, ROOT / "p.md")) == []
    broken = {
        "the exercise has no :label:": good.replace(":label: ex-one\n", ""),
        "needs ':class: dropdown'": good.replace(":class: dropdown\n", ""),
        "no {solution-end}": good.replace("```{solution-end}\n```\n", ""),
        "no {solution-start} ex-one": good.replace("```{solution-start} ex-one\n:class: dropdown\n```\n", ""),
        "no self-check code cell": good.rsplit("```{code-cell}", 1)[0],
        "the worked solution has no code cell": good.replace("```{code-cell} ipython3\nanswer", "```python\nanswer", 1),
    }
    for message, text in broken.items():
        problems = exercise_problems(parse(text, ROOT / "p.md"))
        assert any(message in p for p in problems), (message, problems)
        assert all(p.startswith("p.md:1: exercise") for p in problems if message != "the exercise has no :label:")


def skeleton_problems(page: Page) -> list[str]:
    """A skeleton (``{code-block}`` of class ``skeleton``) sits in an
    exercise, parses as Python and leaves ``...`` for the reader to fill."""
    problems, container = [], None
    for block in sorted(page.blocks, key=lambda b: b.line):
        if block.name in ("exercise", "solution-start", "solution-end"):
            container = block.name
        if block.name != "code-block" or \
                "skeleton" not in str(block.options.get("class", "")).split():
            continue
        if container != "exercise":
            problems.append(f"{where(page, block.line)}: a skeleton outside "
                            "an {exercise}")
        try:
            tree = ast.parse(block.source)
        except SyntaxError as error:
            problems.append(f"{where(page, block.line)}: the skeleton is not "
                            f"Python: {error.msg}")
            continue
        if not any(isinstance(node, ast.Constant) and node.value is Ellipsis
                   for node in ast.walk(tree)):
            problems.append(f"{where(page, block.line)}: the skeleton leaves "
                            "no `...` to fill in")
    return problems


@pytest.mark.parametrize("path", pages_with_exercises(), ids=lambda p: p.name)
def test_skeletons_leave_something_to_fill_in(path):
    problems = skeleton_problems(read_page(path))
    assert not problems, "\n".join(problems)


def test_the_skeleton_checks():
    exercise = "````{exercise}\n:label: ex\n\nDo it.\n\n```{code-block} python\n" \
        ":class: skeleton\n\nCODE\n```\n````\n"
    assert skeleton_problems(parse(exercise.replace("CODE", "x = ..."))) == []
    assert "no `...`" in skeleton_problems(
        parse(exercise.replace("CODE", "x = 1")))[0]
    assert "not Python" in skeleton_problems(
        parse(exercise.replace("CODE", "x = = ...")))[0]
    outside = "```{code-block} python\n:class: skeleton\n\nx = ...\n```\n"
    assert "outside" in skeleton_problems(parse(outside))[0]
