"""Fuzz targets of tests/test_fuzz.py (CI-sized by default, long with FUZZ_SCALE).

Each target is a strategy of generated inputs and a check that asserts the invariants on one input:
only the documented error types, scores in [0, 1] and finite, spans exact, no row lost or duplicated.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import strategies as st

from spicy_lentil.documents import as_document
from spicy_lentil.frontends.jobs import score_job
from spicy_lentil.io import Rejects, read_documents

# Any code point, surrogates and control characters included: what a hostile or broken input holds.
SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
CONTROL = st.characters(max_codepoint=0x9F, categories=["Cc"])
# Built from characters: st.text drops lone surrogates.
ANY_TEXT = st.lists(st.one_of(st.characters(), SURROGATE, CONTROL), max_size=60).map("".join)
PROSE = st.lists(
    st.sampled_from(list("abc xyz.,;:!?\n\t-*1)é") + ["Polonium ", "radium. ", "\n\n", "• ", "\r\n"]), max_size=60
).map("".join)
TEXT = st.one_of(ANY_TEXT, PROSE, st.just(""), st.builds(lambda s, n: s * n, PROSE, st.integers(1, 400)))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
IDS = st.one_of(
    st.integers(-3, 30),
    st.sampled_from(["a", "b", "5", "", " "]),
    ANY_TEXT,
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
)
ROW = st.fixed_dictionaries(
    {"_id": IDS, "text": st.one_of(TEXT, JSON)},
    optional={"title": st.one_of(TEXT, JSON), "sentences": st.lists(TEXT, max_size=3)},
)


def _line(value) -> bytes:
    return json.dumps(value).encode("ascii")  # ascii: lone surrogates travel as \ud800 escapes, as in real files


JSONL_LINE = st.one_of(
    ROW.map(_line),
    JSON.map(_line),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ")),
    st.just(b""),
    st.just(b"   "),
)
JSONL = st.lists(JSONL_LINE, max_size=25)
DOCUMENT = st.one_of(
    TEXT,
    JSON,
    st.fixed_dictionaries({"text": st.one_of(TEXT, JSON)}, optional={"title": st.one_of(TEXT, JSON), "_id": IDS}),
)
QUERY = st.one_of(TEXT, JSON)
API_CALL = st.tuples(QUERY, st.lists(DOCUMENT, max_size=4), st.one_of(st.none(), st.integers(0, 10), st.booleans()))


def _nonblank(line: bytes) -> bool:
    try:
        return bool(line.decode("utf-8").strip())
    except UnicodeDecodeError:
        return True


def check_reader(lines: list[bytes]) -> None:
    """Every non-blank line is a document or a reject, once; documents are valid UTF-8 with unique ids."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.jsonl"
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        rejects = Rejects(Path(folder) / "rejects.jsonl", echo=False)
        documents = list(read_documents([str(path)], rejects))
        rejects.close()
        rejected = (
            [json.loads(line)["line"] for line in (Path(folder) / "rejects.jsonl").read_text().splitlines()]
            if rejects.count
            else []
        )
    nonblank = [number for number, line in enumerate(lines, start=1) if _nonblank(line)]
    assert len(set(rejected)) == len(rejected) and set(rejected) <= set(nonblank)
    assert len(documents) + len(rejected) == len(nonblank)
    ids = [d["_id"] for d in documents]
    assert len(set(ids)) == len(ids)
    for document in documents:
        for value in (document["_id"], document["text"], document["title"] or "", *document.get("sentences", [])):
            value.encode("utf-8")


def _check_field(field, text: str) -> None:
    assert math.isfinite(field.score) and 0.0 <= field.score <= 1.0
    for slot in field.slots:
        assert text[slot.start : slot.end] == slot.text and slot.text
        assert math.isfinite(slot.score) and 0.0 <= slot.score <= 1.0
    assert [s.start for s in field.slots] == sorted(s.start for s in field.slots)


def check_api(lentil, call) -> None:
    """`fields` returns valid fields or raises TypeError/ValueError; never anything else."""
    query, documents, k = call
    try:
        fields = lentil.fields(query, documents, pathways_per_query=k, show_progress_bar=False)
    except (TypeError, ValueError):
        return
    assert len(fields) == len(documents)
    for field, document in zip(fields, documents):
        _check_field(field, as_document(document, "document").text)  # a string, its sentences or a dict
        assert len(field.active) == (k or lentil.pathways_per_query)


def check_slotter(lentil, text: str) -> None:
    """Slots are exact, non-empty spans in document order, at most `max_slots` of them."""
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return  # the API refuses such text before the slotter sees it (check_api)
    slots, truncated = lentil.slotter.split(text)
    assert len(slots) <= lentil.slotter.max_slots and (not truncated or len(slots) == lentil.slotter.max_slots)
    for slot in slots:
        assert text[slot.start : slot.end] == slot.text and slot.text.strip()
    assert [s.start for s in slots] == sorted(s.start for s in slots)


def check_score_job(lentil, lines: list[bytes]) -> None:
    """A score job writes each accepted row exactly once, and the rejects account for the rest."""
    with tempfile.TemporaryDirectory() as folder:
        path, out = Path(folder) / "rows.jsonl", Path(folder) / "out.jsonl"
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        expected = [d["_id"] for d in read_documents([str(path)], Rejects(echo=False))]
        rejects = Rejects(echo=False)
        summary = score_job(
            lentil,
            "polonium and radium",
            read_documents([str(path)], rejects),
            out,
            rejects,
            batch_size=3,
            show_progress_bar=False,
        )
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["_id"] for r in rows] == expected and summary["scored"] == len(expected)
    assert summary["rejected"] + len(expected) == sum(_nonblank(line) for line in lines)
    assert all(math.isfinite(r["score"]) and 0.0 <= r["score"] <= 1.0 for r in rows)
