"""Refactors change no outputs: the shipped model's fields, ranks, compressions and searches equal the
reference written before them (`python -m tests.reference_outputs --write` regenerates it)."""

import json

import numpy as np

from tests.reference_outputs import REFERENCE, compute

# The reference was written on another CPU: float32 sums run in another order with other vector
# widths, which moves the last digits (about 1e-5 seen on attention weights). A refactor that changes
# what is computed moves scores far more than this.
ATOL = 1e-4


def _compare(got, want, path="outputs"):
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), path
        for key in want:
            _compare(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: {len(got)} items, want {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            _compare(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert np.allclose(got, want, rtol=0, atol=ATOL), f"{path}: {got} != {want}"
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def test_outputs_equal_the_reference():
    _compare(compute(), json.loads(REFERENCE.read_text()))


def test_the_comparison_catches_a_changed_score():
    want = json.loads(REFERENCE.read_text())
    got = json.loads(REFERENCE.read_text())
    got["queries"][0]["rank"][0]["score"] += 1e-3
    try:
        _compare(got, want)
    except AssertionError:
        return
    raise AssertionError("a changed score passed the comparison")
