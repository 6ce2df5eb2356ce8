"""The Streamlit app, driven headless with AppTest, and its pure helpers."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from spicy_lentil import RelevanceField, Slot
from spicy_lentil.app.documents import (
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_PASTE_CHARS,
    Upload,
    demo_corpus,
    demo_queries,
    load_uploads,
    split_pasted,
)
from spicy_lentil.app.render import field_html, results_jsonl
from spicy_lentil.app.service import BUNDLED_LABEL, MODEL_DIRS_ENV

APP = Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py"
# The first run in a process loads the model and encodes the demo corpus: minutes on a busy 2-core machine.
TIMEOUT = 300
DEFAULT_RESULTS = 8

_HEAD = re.compile(
    r'<span class="sl-rank">#(\d+)</span><span class="sl-title">(.*?)</span>'
    r'<span class="sl-score"[^>]*>([0-9.]+)</span>'
)
_TAG = re.compile(r"<[^>]+>")


def start() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def ranked(at: AppTest) -> list[tuple[int, str, float]]:
    """(rank, title, score) of each result card, in page order."""
    return [(int(m[1]), html.unescape(m[2]), float(m[3])) for h in at.html if (m := _HEAD.search(h.value))]


def fields_shown(at: AppTest) -> list[str]:
    return [h.value for h in at.html if h.value.startswith('<div class="sl-field">')]


def active_chips(at: AppTest) -> list[str]:
    chips = next(h.value for h in at.html if h.value.startswith('<div class="sl-chips">'))
    return re.findall(r'<span class="sl-chip sl-active"[^>]*>([^<]+)</span>', chips)


def gate_chart_rows(at: AppTest) -> list[dict]:
    chart = at.get("vega_lite_chart")[0]  # the first tab's gate chart comes first in the page
    assert '"gate weight"' in chart.proto.spec
    return convert_arrow_bytes_to_pandas_df(chart.proto.datasets[0].data.data).to_dict("records")


def errors(at: AppTest) -> str:
    return "\n".join(e.value for e in at.error)


def test_clicking_a_suggested_query_gives_ranked_results():
    at = start()
    assert ranked(at) == []
    query = demo_queries()[2]
    at.button(key="suggestion-2").click().run()
    assert not at.exception and not at.error
    assert at.text_input(key="query").value == query
    results = ranked(at)
    assert [rank for rank, _, _ in results] == list(range(1, DEFAULT_RESULTS + 1))
    scores = [score for _, _, score in results]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert {title for _, title, _ in results} <= {doc["title"] for doc in demo_corpus()}
    assert len(fields_shown(at)) == DEFAULT_RESULTS
    assert any(f"{len(demo_corpus())} documents scored" in c.value for c in at.caption)

    at.slider(key="top_n").set_value(3).run()
    assert [title for _, title, _ in ranked(at)] == [title for _, title, _ in results[:3]]


def test_pasted_text_gets_a_field_that_shows_the_text_exactly():
    first = "Tea & <b>biscuits</b> are served at four.\n\nThe kettle is on the left.   It whistles when ready."
    second = "Rome fell in 476 AD, when Odoacer deposed the last western emperor."
    at = start()
    at.radio(key="source").set_value("Paste text").run()
    at.text_area(key="pasted").input(f"{first}\n---\n{second}").run()
    at.text_input(key="query").input("When is tea served?").run()
    assert not at.exception and not at.error
    assert sorted(title for _, title, _ in ranked(at)) == ["Pasted text 1", "Pasted text 2"]
    shown = {html.unescape(_TAG.sub("", field)) for field in fields_shown(at)}
    assert shown == {first, second}
    tea = next(field for field in fields_shown(at) if "kettle" in field)
    assert "&lt;b&gt;biscuits&lt;/b&gt;" in tea and "<b>" not in tea
    slot_tag = r'class="sl-slot( sl-answer)?" data-score="[0-9.]+" title="slot \d+ · score [0-9.]+"'
    assert len(re.findall(slot_tag, tea)) == 3


def test_a_bad_upload_gets_a_message_naming_it_and_the_good_files_still_load():
    good_rows = [
        {"_id": "r1", "title": "Row one", "text": "Bread rises because yeast makes carbon dioxide."},
        {"_id": "r2", "text": "Oceans absorb carbon dioxide and grow more acidic."},
    ]
    jsonl = "\n".join(
        [json.dumps(good_rows[0]), "{not json", json.dumps(good_rows[1]), json.dumps({"title": "no text"})]
    )
    uploads = [
        ("notes.txt", b"Sourdough needs a starter of wild yeast.", "text/plain"),
        ("readme.md", b"# Dough\n\nKneading develops gluten.", "text/markdown"),
        ("rows.jsonl", jsonl.encode(), "application/jsonl"),
        ("slides.pdf", b"%PDF-1.4", "application/pdf"),
        ("latin1.txt", "Caf\xe9 cr\xe8me".encode("latin-1"), "text/plain"),
        ("huge.txt", b"a" * (MAX_FILE_BYTES + 1), "text/plain"),
    ]
    at = start()
    at.radio(key="source").set_value("Upload files").run()
    at.file_uploader(key="uploads").set_value(uploads).run()
    at.text_input(key="query").input("what makes bread dough rise").run()
    assert not at.exception
    message = errors(at)
    assert "rows.jsonl line 2: invalid JSON" in message
    assert "rows.jsonl line 4: missing string field 'text'" in message
    assert "slides.pdf: unsupported file type .pdf" in message
    assert "latin1.txt: not UTF-8" in message
    assert "huge.txt" in message and "MB limit" in message
    for loaded in ("notes.txt", "readme.md", "rows.jsonl line 1", "rows.jsonl line 3"):
        assert loaded not in message
    assert any("4 documents loaded" in c.value for c in at.caption)
    assert sorted(title for _, title, _ in ranked(at)) == sorted(["notes", "readme", "Row one", "r2"])


def test_changing_k_changes_the_number_of_active_pathways():
    at = start()
    at.button(key="suggestion-0").click().run()
    for k in (4, 2, 9, 1):
        at.slider(key="k").set_value(k).run()
        assert not at.exception and not at.error
        assert len(active_chips(at)) == k
        rows = gate_chart_rows(at)
        assert len(rows) == 9
        active = [row for row in rows if row["state"] == "active"]
        assert len(active) == k
        assert sorted(row["pathway"] for row in active) == sorted(active_chips(at))
        assert all(row["weight"] == 0.0 for row in rows if row["state"] != "active")
        assert any(f"routed to {k} of 9 pathways" in c.value for c in at.caption)


def test_compress_keeps_the_most_relevant_slots_within_the_budget():
    at = start()
    at.button(key="suggestion-5").click().run()
    at.slider(key="budget").set_value(64).run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    kept, total = (
        int(metrics["Tokens kept"].replace(",", "")),
        int(metrics["Tokens in the ranked documents"].replace(",", "")),
    )
    assert 0 < kept <= 64 < total
    assert metrics["Share kept"] == f"{kept / total:.1%}"
    parts = at.code[0].value.split("\n\n")
    texts = [doc["text"] for doc in demo_corpus()]
    # One paragraph per document, made of that document's kept slots joined by spaces.
    assert parts and all(any(part[:40] in t and part[-40:] in t for t in texts) for part in parts)


def test_visitors_choose_only_the_operators_model_folders(tmp_path, monkeypatch):
    monkeypatch.setenv(MODEL_DIRS_ENV, str(tmp_path))
    at = start()
    assert not at.text_input or all(t.key != "model_folder" for t in at.text_input)  # no box to type a path into
    box = at.selectbox(key="model_folder")
    assert box.options == [BUNDLED_LABEL, str(tmp_path)]
    box.set_value(str(tmp_path)).run()  # the operator listed a folder that is not a model
    assert not at.exception
    assert str(tmp_path) in errors(at) and "config.json is missing" in errors(at)
    assert ranked(at) == [] and not at.slider


def test_pasted_text_over_the_limit_is_refused_on_the_server():
    at = start()
    at.radio(key="source").set_value("Paste text").run()
    at.text_area(key="pasted").input("word " * (MAX_PASTE_CHARS // 5 + 1)).run()
    at.text_input(key="query").input("words").run()
    assert not at.exception
    assert "over the" in errors(at) and ranked(at) == []


class CountingUpload(Upload):
    """An upload that counts how often its bytes are read."""

    reads = 0

    def getvalue(self) -> bytes:
        type(self).reads += 1
        return super().getvalue()


class LyingUpload(Upload):
    """An upload whose size understates its bytes."""

    @property
    def size(self) -> int:
        return 10


def test_uploads_over_the_limits_are_refused_before_they_are_read():
    CountingUpload.reads = 0
    too_big = b"a" * (MAX_FILE_BYTES + 1)
    files = [CountingUpload("big.txt", too_big), LyingUpload("lies.txt", too_big)]
    files += [CountingUpload(f"doc{i}.txt", f"Document number {i}.".encode()) for i in range(MAX_FILES + 3)]
    documents, problems = load_uploads(files)
    assert CountingUpload.reads == MAX_FILES - 2  # the oversized file and those past the count were never read
    assert len(documents) == MAX_FILES - 2
    assert problems[0].startswith("big.txt: 2.0 MB is over") and problems[1].startswith("lies.txt: 2.0 MB is over")
    assert len(problems) == 2 + 5 and all("not loaded" in p for p in problems[2:])


def test_app_command_binds_loopback_and_passes_the_limits(tmp_path):
    from spicy_lentil.frontends.cli import build_parser
    from spicy_lentil.frontends.commands import app_command

    (tmp_path / "m1").mkdir()
    (tmp_path / "m1" / "config.json").write_text("{}")
    command, env = app_command(
        build_parser().parse_args(["app", "--model-dir", str(tmp_path / "m1")]),
        {MODEL_DIRS_ENV: "/etc", "PATH": "/bin"},
    )
    option = {command[i]: command[i + 1] for i in range(len(command) - 1) if command[i].startswith("--server.")}
    assert option["--server.address"] == "127.0.0.1"
    assert option["--server.maxUploadSize"] == str(MAX_FILE_BYTES // (1024 * 1024))
    assert env[MODEL_DIRS_ENV] == str((tmp_path / "m1").resolve()) and env["PATH"] == "/bin"  # the operator's list only
    command, _ = app_command(build_parser().parse_args(["app", "--host", "0.0.0.0"]), {})
    assert command[command.index("--server.address") + 1] == "0.0.0.0"
    with pytest.raises(ValueError, match="config.json is missing"):
        app_command(build_parser().parse_args(["app", "--model-dir", str(tmp_path)]), {})


def test_load_uploads_limits_the_number_of_files():
    files = [Upload(f"doc{i}.txt", f"Document number {i}.".encode()) for i in range(MAX_FILES + 2)]
    documents, problems = load_uploads(files)
    assert [d["_id"] for d in documents] == [f"doc{i}.txt" for i in range(MAX_FILES)]
    assert problems == [
        f"doc{i}.txt: not loaded, only the first {MAX_FILES} files are read" for i in (MAX_FILES, MAX_FILES + 1)
    ]


def test_a_bad_jsonl_byte_or_surrogate_costs_only_its_row():
    content = b'{"text": "good one"}\n{"text": "caf\xe9"}\n{"text": "lone \\ud800"}\n{"text": "good two"}\n'
    documents, problems = load_uploads([Upload("rows.jsonl", content)])
    assert [d["text"] for d in documents] == ["good one", "good two"]
    assert problems == [
        "rows.jsonl line 2: not UTF-8 text (byte 13 of the line cannot be decoded)",
        "rows.jsonl line 3: 'text' holds a lone surrogate at character 5 (not valid Unicode text)",
    ]


def test_load_uploads_reports_empty_files_and_non_object_rows():
    documents, problems = load_uploads(
        [Upload("empty.md", b"  \n"), Upload("list.jsonl", b'[1, 2]\n\n{"text": "ok"}\n'), Upload("none.jsonl", b"\n")]
    )
    assert documents == [{"_id": "list.jsonl:3", "title": None, "text": "ok"}]
    assert problems == [
        "empty.md: the file is empty",
        "list.jsonl line 1: expected a JSON object, got list",
        "none.jsonl: the file has no rows",
    ]


def test_split_pasted_separates_documents_on_dash_lines():
    assert [d["text"] for d in split_pasted("one\n---\n\n  ---  \ntwo\nstill two --- here\n")] == [
        "one",
        "two\nstill two --- here",
    ]
    assert split_pasted("   ") == []


def test_field_html_covers_the_text_exactly_and_escapes_it():
    text = "  A <x> & B.  C?\n"
    field = RelevanceField(0.5, [Slot("A <x> & B.", 2, 12, 0.2), Slot("C?", 14, 16, 0.9)], {}, [], [])
    rendered = field_html(text, field)
    assert html.unescape(_TAG.sub("", rendered)) == text
    assert 'title="slot 2 · score 0.900"' in rendered and "&lt;x&gt;" in rendered
    # Only the slot at or above the calibrated 0.5 is marked as answering.
    assert re.findall(r'class="sl-slot sl-answer" data-score="([0-9.]+)"', rendered) == ["0.9000"]


def test_field_html_escapes_the_text_outside_every_slot():
    # Text no slot covers (between slots, and the tail of a document cut at the slot cap) is shown too,
    # and is the uploader's text: it must be escaped like the slots' own.
    text = "<i>lead</i> A. <b>between</b> B. <script>alert(1)</script> & tail"
    a, b = text.index("A."), text.index("B.")
    field = RelevanceField(0.5, [Slot("A.", a, a + 2, 0.2), Slot("B.", b, b + 2, 0.9)], {}, [], [], truncated=True)
    rendered = field_html(text, field)
    assert html.unescape(_TAG.sub("", rendered)) == text
    assert "<script>" not in rendered and "<b>" not in rendered and "<i>" not in rendered


def test_results_jsonl_has_one_to_dict_per_ranked_field():
    fields = [
        RelevanceField(0.1, [], {"a": 1.0}, ["a"], [], document_id="low"),
        RelevanceField(0.9, [Slot("x", 0, 1, 0.9)], {"a": 1.0}, ["a"], [{"a": 1.0}], document_id="high"),
    ]
    rows = [json.loads(line) for line in results_jsonl("q", [1, 0], fields).splitlines()]
    assert [(r["rank"], r["document_id"], r["query"]) for r in rows] == [(1, "high", "q"), (2, "low", "q")]
    assert {k: v for k, v in rows[0].items() if k not in ("rank", "query")} == fields[1].to_dict()
