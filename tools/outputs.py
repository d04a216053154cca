"""Numbers that agree within float noise, on any machine.

Two texts are the same (``same_text``) when they agree after the spaces that
align numbers are dropped, and every number agrees within float noise:

- relative difference at most ``RTOL`` (1e-5), or absolute at most
  ``ATOL`` (1e-6): other CPUs and vector paths (``ATEN_CPU_CAPABILITY``)
  change float32 results in their 7th or 8th significant digit, while a
  change in the 4th (2.5794 to 2.5798) is a relative change of 1.6e-4;
- a number printed with at least 4 significant digits may also move by
  one unit of its last digit (a value on a rounding edge, 0.40045 printed
  as 0.4004 or 0.4005); values that are rounding noise themselves (an
  error of 2.3e-7 or 2.5e-7) agree through ``ATOL``.

The page tests compare stored outputs with it (tests/stored_outputs.py),
and the learner notebooks their glued values. Values glued or printed by
cells tagged ``timing`` or ``machine-dependent`` (timings, recursion
limits, versions) are not compared at all: ``MEASURED_TAGS``.
"""

from __future__ import annotations

import re

RTOL = 1e-5
ATOL = 1e-6
MEASURED_TAGS = {"timing", "machine-dependent"}
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def significant_digits(number: str) -> int:
    mantissa = re.split("[eE]", number)[0].lstrip("+-").replace(".", "")
    return len(mantissa.lstrip("0"))


def last_place(number: str) -> float:
    mantissa, _, exponent = number.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def same_number(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    allowed = max(ATOL, RTOL * max(abs(x), abs(y)))
    if min(significant_digits(a), significant_digits(b)) >= 4:
        allowed = max(allowed, 1.000001 * max(last_place(a), last_place(b)))
    return abs(x - y) <= allowed


def same_text(expected: str, obtained: str) -> bool:
    """Equal up to float noise in numbers and the spaces that align them."""
    if expected == obtained:
        return True

    def frame(text):
        return [re.sub(r"\s+", "", part) for part in NUMBER.split(text)]

    if frame(expected) != frame(obtained):
        return False
    return all(same_number(a, b) for a, b in
               zip(NUMBER.findall(expected), NUMBER.findall(obtained)))
