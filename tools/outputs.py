"""What a page printed, as stored and compared: the same on any machine.

An executed page is reduced to its code cells' outputs (``normalised``):
text, errors (type and message), glued values and images (kind and size).
Two runs are the same (``difference``) when their texts agree after
addresses, paths and times are masked and every number agrees within
float noise:

- relative difference at most ``RTOL`` (1e-5), or absolute at most
  ``ATOL`` (1e-6): other CPUs and vector paths (``ATEN_CPU_CAPABILITY``)
  change float32 results in their 7th or 8th significant digit, while a
  change in the 4th (2.5794 to 2.5798) is a relative change of 1.6e-4;
- a number printed with at least 4 significant digits may also move by
  one unit of its last digit (a value on a rounding edge, 0.40045 printed
  as 0.4004 or 0.4005); values that are rounding noise themselves (an
  error of 2.3e-7 or 2.5e-7) agree through ``ATOL``.

Outputs of cells tagged ``timing`` or ``machine-dependent`` (timings,
recursion limits, versions) are stored as their kind and glue name only.
"""

from __future__ import annotations

import base64
import difflib
import re
import struct

import nbformat

RTOL = 1e-5
ATOL = 1e-6
MEASURED_TAGS = {"timing", "machine-dependent"}
MASKS = [
    (re.compile(r"\x1b\[[0-9;]*m"), ""),
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "0x<ADDRESS>"),
    (re.compile(r"(/[\w.+@-]+)+/(site|dist)-packages(/[\w.+@-]+)*"),
     "<LIBRARY>"),
    (re.compile(r"/tmp(/[\w.+@-]+)+"), "<TMP>"),
    (re.compile(r"(/[\w.+@-]+)+/book/"), "<BOOK>/"),
]
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
RECORD = "application/papermill.record/"


def masked(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def image(mime: str, data: str) -> str:
    if mime == "image/png":
        width, height = struct.unpack(">II", base64.b64decode(data)[16:24])
        return f"<PNG {width}x{height}>"
    return "<SVG>"


def normalised_output(output, measured: bool) -> dict | None:
    kind = output.output_type
    if kind == "stream":
        text = "<MEASURED>\n" if measured else masked(output.text)
        return {"output_type": "stream", "name": output.name, "text": text}
    if kind == "error":
        return {"output_type": "error", "ename": output.ename,
                "evalue": masked(output.evalue), "traceback": []}
    data = {}
    for mime, value in sorted(output.get("data", {}).items()):
        value = value if isinstance(value, str) else "".join(value)
        base = mime.removeprefix(RECORD)
        if base in ("image/png", "image/svg+xml"):
            data[mime] = image(base, value)
        elif base == "text/plain":
            data[mime] = "<MEASURED>" if measured else masked(value)
    if not data:
        return None
    name = output.get("metadata", {}).get("scrapbook", {}).get("name")
    result = {"output_type": kind, "data": data,
              "metadata": {"glue": name} if name else {}}
    if kind == "execute_result":
        result["execution_count"] = None
    return result


def normalised(notebook) -> nbformat.NotebookNode:
    """The code cells of an executed notebook: source and outputs as stored."""
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        measured = bool(MEASURED_TAGS & set(cell.metadata.get("tags", [])))
        outputs = []
        for output in cell.get("outputs", []):
            output = normalised_output(output, measured)
            last = outputs[-1] if outputs else None
            if output is None:
                continue
            if last and output["output_type"] == last["output_type"] == \
                    "stream" and output["name"] == last["name"]:
                if not measured:  # how a stream is split is timing
                    last["text"] += output["text"]
            else:
                outputs.append(output)
        cells.append({"cell_type": "code", "execution_count": None,
                      "metadata": {}, "source": cell.source,
                      "outputs": outputs})
    return nbformat.from_dict({"nbformat": 4, "nbformat_minor": 4,
                               "metadata": {}, "cells": cells})


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


def texts(output: dict) -> list[str]:
    if output["output_type"] == "stream":
        return [output["text"]]
    if output["output_type"] == "error":
        return [output["ename"], output["evalue"]]
    return [f"{mime}: {value}" for mime, value in output["data"].items()]


def shape(output: dict) -> tuple:
    return (output["output_type"], output.get("name"),
            output.get("metadata", {}).get("glue"),
            tuple(output.get("data", {})))


def cell_difference(expected: dict, obtained: dict) -> str:
    """'' if the cell's outputs agree, else a short diff."""
    old, new = expected["outputs"], obtained["outputs"]
    if [shape(o) for o in old] == [shape(o) for o in new] and all(
            same_text(a, b) for e, o in zip(old, new)
            for a, b in zip(texts(e), texts(o))):
        return ""
    before = "\n".join(t for o in old for t in texts(o)).splitlines()
    after = "\n".join(t for o in new for t in texts(o)).splitlines()
    diff = difflib.unified_diff(before, after, "stored", "now", lineterm="",
                                n=1)
    return "\n".join(list(diff)[2:40])


def difference(expected, obtained) -> list[tuple[int, str]]:
    """(code cell number, diff) for every code cell whose outputs differ."""
    if len(expected.cells) != len(obtained.cells):
        return [(-1, f"{len(obtained.cells)} code cells now, "
                     f"{len(expected.cells)} stored")]
    found = []
    for number, (old, new) in enumerate(zip(expected.cells, obtained.cells)):
        text = cell_difference(old, new)
        if text:
            found.append((number, text))
    return found
