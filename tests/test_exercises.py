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

from book_pages import BOOK, ROOT
from myst_source import Block, Page, parse, python_tree, read_page

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
# Each name in the self-check gets the set of solution names its value was
# computed from ("taint"), by following the cell's assignments (for loops
# over a literal list of tuples position by position, functions through
# their bodies and their call arguments). A check is an assert's condition,
# an ``if ...: raise`` condition, or the positional arguments of a call to
# ``assert_*``, ``*close`` or ``*equal``; keyword arguments (tolerances,
# messages) and assert messages are not part of it. The *sources* of a check
# are, for each name it reads: the solution names the name derives from, or,
# when it derives from none, the name itself. Modules and builtins are not
# sources. A check is independent when its sources include a solution name
# and at least one other source: ``assert answer == answer``,
# ``expected = answer; assert isclose(answer, expected)`` and
# ``assert answer == 14.0`` are not; ``isclose(answer, formula(x0))`` and
# ``allclose(got, fd)`` (fd computed from another answer) are. A heuristic:
# ``abs(answer - answer) < tol`` passes it.


def independent_checks(tree: ast.Module, answers: set[str], modules: set[str]) -> list[ast.AST]:
    taint = propagate(tree, answers)
    ignored = modules | BUILTINS

    def sources(expressions) -> set[str]:
        found = set()
        for expression in expressions:
            for node in walk_without_keywords(expression):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) \
                        and node.id not in ignored:
                    found |= taint.get(node.id) or {f"<{node.id}>"}
        return found

    independent = []
    for expressions, node in checks(tree):
        found = sources(expressions)
        if found & answers and len(found) >= 2:
            independent.append(node)
    return independent


def walk_without_keywords(node: ast.AST):
    """ast.walk, without the keyword arguments of calls (rel_tol=..., msg=...)."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, ast.keyword):
            yield from walk_without_keywords(child)


def checks(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            yield [node.test], node
        elif isinstance(node, ast.If) and any(isinstance(s, ast.Raise) for s in node.body):
            yield [node.test], node
        elif isinstance(node, ast.Call) and CHECK_CALL.search(call_name(node.func)):
            yield list(node.args), node


def call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def loads(expression: ast.AST | None) -> set[str]:
    if expression is None:
        return set()
    return {n.id for n in ast.walk(expression) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


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


def flows(tree: ast.Module):
    """(target name, names its value is computed from) for every binding in the cell."""
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def pair(target, value):
        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
                and len(target.elts) == len(value.elts):
            for t, v in zip(target.elts, value.elts):
                yield from pair(t, v)
        else:
            for name in bound_in(target):
                yield name, loads(value)

    def iterate(target, iterable):
        rows = iterable.elts if isinstance(iterable, (ast.List, ast.Tuple, ast.Set)) else None
        if rows and isinstance(target, (ast.Tuple, ast.List)) and all(
                isinstance(r, (ast.Tuple, ast.List)) and len(r.elts) == len(target.elts) for r in rows):
            for position, element in enumerate(target.elts):
                for name in bound_in(element):
                    yield name, set().union(*(loads(r.elts[position]) for r in rows))
        else:
            for name in bound_in(target):
                yield name, loads(iterable)

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                yield from pair(target, node.value)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            for name in bound_in(node.target):
                yield name, loads(node.value) | {name}
        elif isinstance(node, ast.NamedExpr):
            yield node.target.id, loads(node.value)
        elif isinstance(node, (ast.For, ast.comprehension)):
            yield from iterate(node.target, node.iter)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            for name in bound_in(node.optional_vars):
                yield name, loads(node.context_expr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            parameters = {a.arg for a in node.args.args + node.args.kwonlyargs}
            body = set().union(*(loads(s) for s in node.body)) - parameters
            yield node.name, body
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in functions:
            parameters = functions[node.func.id].args.args
            for parameter, argument in zip(parameters, node.args):
                yield parameter.arg, loads(argument)


def bound_in(target: ast.AST) -> list[str]:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]


def propagate(tree: ast.Module, answers: set[str]) -> dict[str, set[str]]:
    """The solution names each name's value derives from (a fixed point over the cell)."""
    taint = {name: {name} for name in answers}
    edges = list(flows(tree))
    changed = True
    while changed:
        changed = False
        for target, sources in edges:
            new = set().union(*(taint.get(s, set()) for s in sources)) if sources else set()
            if not new <= taint.setdefault(target, set()):
                taint[target] |= new
                changed = True
    return taint


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
