"""Property tests of Part I's engines against PyTorch in float64.

The engines are loaded from their pages (the cells tagged ``engine`` and
``engine-tape``), so the code tested is the code the reader sees. Each
expression is written once, as a small tree, and evaluated by every engine
and by PyTorch; hypothesis chooses the trees and the inputs.

forward-vs-reverse.md carries copies of the engines so that it runs on its
own; the copies must equal the originals (tools/engine_copies.py).
"""

import math
import operator

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tools import engine_copies
from tools.pages import ROOT

PART1 = ROOT / "book" / "part1-from-scratch"


def load(page, tag):
    """Run a page's cells tagged ``tag``; return what they define."""
    namespace = {"__name__": f"{page}:{tag}"}
    code = engine_copies.tagged_source(PART1 / page, tag)
    exec(compile(code, f"{page}[{tag}]", "exec"), namespace)
    return namespace


ENGINE_CELLS = [("forward-mode-dual-numbers.md", "engine"),
           ("reverse-mode-by-hand.md", "engine"),
           ("reverse-mode-by-hand.md", "engine-tape")]
DUAL, VAR, TAPE = (load(page, tag) for page, tag in ENGINE_CELLS)


def test_the_engine_copies_equal_the_originals():
    assert {(original.name, tag) for original, tag, _ in
            engine_copies.copies(PART1 / "forward-vs-reverse.md")} == \
        set(ENGINE_CELLS)
    problems = [problem for page in engine_copies.pages_with_copies()
                for problem in engine_copies.stale(page)]
    assert not problems, "\n".join(
        [*problems, "run: python -m tools.engine_copies"])


def test_a_stale_copy_is_rewritten_from_its_original(tmp_path):
    for page in PART1.glob("*.md"):
        (tmp_path / page.name).write_text(page.read_text())
    page = tmp_path / "forward-vs-reverse.md"
    text = page.read_text()
    page.write_text(text.replace("class Var:", "class Var:  # edited", 1))
    assert len(engine_copies.stale(page)) == 1
    engine_copies.rewrite(page)
    assert engine_copies.stale(page) == []
    assert page.read_text() == text


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
        # A constant integer exponent is fine for any base (x**0 too);
        # otherwise PyTorch's gradient is finite only for a base > 0.
        integer_power = (not isinstance(b, torch.Tensor)
                         and float(other).is_integer() and 0 <= other <= 3)
        if name == "pow" and not integer_power and (
                value < 0.3 or abs(other) > 4):
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
    value = result.detach() if isinstance(result, torch.Tensor) else result
    if guard and abs(float(value)) > 1e4:
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
constants = st.one_of(
    st.floats(0.5, 2.0).map(lambda c: ("const", round(c, 3))),
    st.sampled_from([0.0, 1.0, 2.0, 3.0]).map(lambda c: ("const", c)),
)
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


def slope(engine, f, a):
    """Value and derivative of a one-input function f at a, by engine."""
    if engine == "DualNumber":
        z = f(DUAL["DualNumber"](a, 1.0))
        return z.value, z.dvalue
    if engine == "Var":
        x = VAR["Var"](a)
        z = f(x)
        z.grad_value = 1.0
        return z.value, x.grad()
    x = TAPE["Node"](a)
    z = f(x)
    z.backward()
    return z.value, x.grad


def torch_slope(f, a):
    x = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    z = f(x)
    (g,) = torch.autograd.grad(z, x)
    return z.item(), g.item()


def abs_if(x):
    if x < 0:
        return -x
    return x


ENGINE_TYPES = {"DualNumber": DUAL["DualNumber"], "Var": VAR["Var"],
                "tape": TAPE["Node"]}


@pytest.mark.parametrize("engine", ENGINES)
def test_comparisons_look_at_the_value(engine):
    make = ENGINE_TYPES[engine]
    one, two = make(1.0), make(2.0)
    assert one < two and one <= two and two > one and two >= one
    assert not (one > two or one >= two or two < one or two <= one)
    assert one < 2 and one <= 1 and one > 0 and one >= 1
    assert 0 < one and 1 <= one and 2 > one and 1 >= one
    assert not (one < 1 or one > 1)
    assert max(one, two) is two and min(one, two) is one


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=50, deadline=None)
@given(a=st.floats(-3.0, 3.0).filter(lambda a: abs(a) > 1e-3
                                     and abs(a * a - 1) > 1e-3))
def test_a_branch_on_the_value_matches_torch_abs(engine, a):
    for f, reference in [
        (abs_if, torch.abs),
        (lambda x: x * abs_if(x * x - 1), lambda x: x * torch.abs(x * x - 1)),
    ]:
        got = slope(engine, f, a)
        expected = torch_slope(reference, a)
        assert math.isclose(got[0], expected[0], rel_tol=1e-12, abs_tol=1e-15)
        assert math.isclose(got[1], expected[1], rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_branch_taken_decides_the_slope_at_the_kink(engine):
    assert slope(engine, abs_if, 0.0) == (0.0, 1.0)  # `x < 0` is false


def power_grads(engine, a, b):
    """Value and (d/da, d/db) of a ** b with both an engine number."""
    if engine == "DualNumber":
        make = DUAL["DualNumber"]
        z_a = make(a, 1.0) ** make(b, 0.0)
        z_b = make(a, 0.0) ** make(b, 1.0)
        return z_a.value, z_a.dvalue, z_b.dvalue
    if engine == "Var":
        x, y = VAR["Var"](a), VAR["Var"](b)
        z = x**y
        z.grad_value = 1.0
        return z.value, x.grad(), y.grad()
    x, y = TAPE["Node"](a), TAPE["Node"](b)
    z = x**y
    z.backward()
    return z.value, x.grad, y.grad


def torch_power_grads(a, b):
    x = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    z = x**y
    gx, gy = torch.autograd.grad(z, (x, y))
    return z.item(), gx.item(), gy.item()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("a, b", [(-2.0, 2.0), (-1.5, 3.0), (-0.7, 0.0),
                                  (-3.0, 1.0), (0.0, 2.0), (0.0, 1.0),
                                  (0.0, 0.0), (2.0, 0.0)])
def test_a_base_at_most_zero_with_an_engine_exponent(engine, a, b):
    value, d_base, d_exponent = power_grads(engine, a, b)
    expected = torch_power_grads(a, b)
    assert (value, d_base) == pytest.approx(expected[:2], rel=1e-12)
    if math.isnan(expected[2]):  # PyTorch's choice for a base < 0
        assert math.isnan(d_exponent)
    else:
        assert d_exponent == pytest.approx(expected[2], rel=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("n", [0, 0.0, 1, 2, 3])
@pytest.mark.parametrize("a", [0.0, -1.5, 1.25])
def test_a_constant_integer_power_at_any_base(engine, a, n):
    got = slope(engine, lambda x: x**n, a)
    expected = torch_slope(lambda x: x**n, a)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


signed_points = st.lists(st.floats(-1.6, 1.6), min_size=N_INPUTS,
                         max_size=N_INPUTS)


@pytest.mark.parametrize("engine", ENGINES)
@SETTINGS
@given(tree=trees, n=st.sampled_from([0.0, 1.0, 2.0, 3.0]),
       point=signed_points)
def test_integer_powers_match_pytorch_for_any_base(engine, tree, n, point):
    assert_matches_torch(engine, ("pow", tree, ("const", n)), point)
