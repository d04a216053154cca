"""What a page printed, as stored in tests/references/ and compared.

An executed page is reduced to its code cells' outputs (``normalised``):
text, errors (type and message), glued values and images (their kind),
with addresses, paths and times masked. Two runs agree (``difference``)
when their texts are the same within float noise (``tools.outputs``).
Outputs of cells tagged ``timing`` or ``machine-dependent`` are stored as
their kind and glue name only.
"""

from __future__ import annotations

import difflib
import re

import nbformat

from tools.outputs import MEASURED_TAGS, same_text

MASKS = [
    (re.compile(r"\x1b\[[0-9;]*m"), ""),
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "0x<ADDRESS>"),
    (re.compile(r"(/[\w.+@-]+)+/(site|dist)-packages(/[\w.+@-]+)*"),
     "<LIBRARY>"),
    (re.compile(r"/tmp(/[\w.+@-]+)+"), "<TMP>"),
    (re.compile(r"(/[\w.+@-]+)+/book/"), "<BOOK>/"),
]
RECORD = "application/papermill.record/"


def masked(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def image(mime: str) -> str:
    """A figure is stored as its kind: its size in pixels follows its tick
    labels and fonts, so it changes with what the machine measured (a
    timing plot) without the page having changed."""
    return "<PNG>" if mime == "image/png" else "<SVG>"


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
            data[mime] = image(base)
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
