"""Property tests of Part I's engines against PyTorch in float64.

The engines are loaded from their pages (the cells tagged ``engine`` and
``engine-tape``), so the code tested is the code the reader sees. Each
expression is written once, as a small tree, and evaluated by every engine
and by PyTorch; hypothesis chooses the trees and the inputs.

forward-vs-reverse.md carries copies of the engines so that it runs on its
own; the copies must equal the originals.
"""

import math
import operator

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tools.pages import ROOT, read_notebook

PART1 = ROOT / "book" / "part1-from-scratch"


def tagged_source(page, tag):
    """The code of a page's cells tagged ``tag``, joined."""
    return "\n\n\n".join(
        cell.source.strip("\n") for cell in read_notebook(PART1 / page).cells
        if cell.cell_type == "code" and tag in cell.metadata.get("tags", []))


def load(page, tag):
    """Run a page's cells tagged ``tag``; return what they define."""
    namespace = {"__name__": f"{page}:{tag}"}
    exec(compile(tagged_source(page, tag), f"{page}[{tag}]", "exec"), namespace)
    return namespace


ENGINE_CELLS = [("forward-mode-dual-numbers.md", "engine"),
           ("reverse-mode-by-hand.md", "engine"),
           ("reverse-mode-by-hand.md", "engine-tape")]
DUAL, VAR, TAPE = (load(page, tag) for page, tag in ENGINE_CELLS)


def test_the_engine_copies_equal_the_originals():
    copies = {}
    for cell in read_notebook(PART1 / "forward-vs-reverse.md").cells:
        first, _, rest = cell.source.partition("\n")
        if cell.cell_type == "code" and first.startswith("# Copied from "):
            page, tag = first.removeprefix("# Copied from ").rstrip(".") \
                .split(", cells tagged ")
            copies[page, tag] = rest
    assert set(copies) == set(ENGINE_CELLS)
    for (page, tag), source in copies.items():
        assert source.strip() == tagged_source(page, tag).strip(), (
            f"forward-vs-reverse.md's copy of {page} ({tag}) differs from "
            "the original: copy the cells again")

UNARY = ["sin", "cos", "tan", "exp", "log", "neg"]
BINARY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "pow": operator.pow,
}
N_INPUTS = 2


class OutOfDomain(Exception):
    """The expression leaves the region where every rule is smooth and tame."""


def check_domain(name, a, b=None):
    value = float(a.detach()) if isinstance(a, torch.Tensor) else float(a)
    if name == "log" and value < 0.2:
        raise OutOfDomain
    if name == "tan" and abs(math.cos(value)) < 0.3:
        raise OutOfDomain
    if name == "exp" and value > 5:
        raise OutOfDomain
    if name in ("truediv", "pow"):
        other = float(b.detach()) if isinstance(b, torch.Tensor) else float(b)
        if name == "truediv" and abs(other) < 0.3:
            raise OutOfDomain
        if name == "pow" and (value < 0.3 or abs(other) > 4):
            raise OutOfDomain


def evaluate(tree, inputs, functions, guard=False):
    """Evaluate an expression tree with one engine's inputs and functions."""
    kind = tree[0]
    if kind == "x":
        return inputs[tree[1]]
    if kind == "const":
        return tree[1]
    if kind in BINARY:
        a = evaluate(tree[1], inputs, functions, guard)
        b = evaluate(tree[2], inputs, functions, guard)
        if guard:
            check_domain(kind, a, b)
        result = BINARY[kind](a, b)
    else:
        a = evaluate(tree[1], inputs, functions, guard)
        if guard:
            check_domain(kind, a)
        if kind == "neg":
            result = -a
        elif isinstance(a, float):
            result = getattr(math, kind)(a)
        else:
            result = functions[kind](a)
    if guard and abs(float(result)) > 1e4:
        raise OutOfDomain
    return result


def uses_inputs(tree):
    return tree[0] == "x" or any(isinstance(t, tuple) and uses_inputs(t) for t in tree[1:])


TORCH_FUNCTIONS = {name: getattr(torch, name) for name in UNARY if name != "neg"}


def torch_value_and_grad(tree, point):
    xs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in point]
    try:
        z = evaluate(tree, xs, TORCH_FUNCTIONS, guard=True)
    except OutOfDomain:
        return None
    grads = torch.autograd.grad(z, xs, allow_unused=True)
    grads = [torch.zeros((), dtype=torch.float64) if g is None else g for g in grads]
    return z.detach(), torch.stack(grads)


def dual_value_and_grad(tree, point):
    grads = []
    for i in range(len(point)):
        xs = [DUAL["DualNumber"](v, 1.0 if j == i else 0.0) for j, v in enumerate(point)]
        z = evaluate(tree, xs, DUAL)
        grads.append(z.dvalue)
    return z.value, grads


def var_value_and_grad(tree, point):
    xs = [VAR["Var"](v) for v in point]
    z = evaluate(tree, xs, VAR)
    z.grad_value = 1.0
    return z.value, [x.grad() for x in xs]


def tape_value_and_grad(tree, point):
    xs = [TAPE["Node"](v) for v in point]
    z = evaluate(tree, xs, {name: TAPE[f"node_{name}"] for name in TORCH_FUNCTIONS})
    z.backward()
    return z.value, [x.grad for x in xs]


ENGINES = {
    "DualNumber": dual_value_and_grad,
    "Var": var_value_and_grad,
    "tape": tape_value_and_grad,
}


def assert_matches_torch(engine, tree, point):
    reference = torch_value_and_grad(tree, point)
    assume(reference is not None)
    value, grads = ENGINES[engine](tree, point)
    expected_value, expected_grads = reference
    torch.testing.assert_close(
        torch.tensor(float(value), dtype=torch.float64), expected_value,
        rtol=1e-9, atol=1e-12, msg=lambda m: f"{engine} value of {tree} at {point}: {m}",
    )
    torch.testing.assert_close(
        torch.tensor([float(g) for g in grads], dtype=torch.float64), expected_grads,
        rtol=1e-9, atol=1e-12, msg=lambda m: f"{engine} gradient of {tree} at {point}: {m}",
    )


inputs = st.integers(0, N_INPUTS - 1).map(lambda i: ("x", i))
constants = st.floats(0.5, 2.0).map(lambda c: ("const", round(c, 3)))
leaves = st.one_of(inputs, inputs, constants)
trees = st.recursive(
    leaves,
    lambda sub: st.one_of(
        st.tuples(st.sampled_from(UNARY), sub),
        st.tuples(st.sampled_from(sorted(BINARY)), sub, sub),
    ),
    max_leaves=8,
).filter(uses_inputs)
points = st.lists(st.floats(0.4, 1.6), min_size=N_INPUTS, max_size=N_INPUTS)

SETTINGS = settings(
    max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)


@pytest.mark.parametrize("engine", ENGINES)
@SETTINGS
@given(tree=trees, point=points)
def test_random_expressions_match_pytorch(engine, tree, point):
    assert_matches_torch(engine, tree, point)


X, Y = ("x", 0), ("x", 1)
C = ("const", 1.5)
OPERATOR_CASES = [(name, (name, X)) for name in UNARY] + [
    (f"{name}{suffix}", (name, *args))
    for name in BINARY
    for suffix, args in (("", (X, Y)), ("-number-right", (X, C)), ("-number-left", (C, Y)))
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", [tree for _, tree in OPERATOR_CASES], ids=[n for n, _ in OPERATOR_CASES])
@settings(max_examples=25, deadline=None)
@given(point=points)
def test_every_operator_matches_pytorch(engine, case, point):
    assert_matches_torch(engine, case, point)
