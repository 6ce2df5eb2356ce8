"""The rules a document meets are the same through every front end: the command line, the Python API and HTTP."""

import json

import pytest
from fastapi.testclient import TestClient

from spicy_lentil.frontends.cli import main
from spicy_lentil.frontends.server import create_app

QUERY = "How long does the battery take to charge?"
TEXT = "A full charge takes about 4.5 hours."


@pytest.fixture(scope="module")
def client(lentil):
    return TestClient(create_app(lentil))


def cli_rows(tmp_path, rows: list[dict]) -> tuple[dict, list[dict]]:
    """The output rows by id, and the rejects, of `score` over `rows`."""
    corpus, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    corpus.write_text("".join(json.dumps(row) + "\n" for row in rows))
    main(["score", "--query", QUERY, str(corpus), "--out", str(out), "--overwrite"])
    written = {row["_id"]: row for row in map(json.loads, out.read_text().splitlines())}
    rejects_file = tmp_path / "out.jsonl.rejects.jsonl"
    rejects = [json.loads(line) for line in rejects_file.read_text().splitlines()] if rejects_file.exists() else []
    return written, rejects


def test_one_id_rule_everywhere(tmp_path, lentil, client):
    accepted = [({"id": "a"}, "a"), ({"_id": "b"}, "b"), ({"_id": 5}, "5"), ({"id": 6}, "6")]
    refused = [{"_id": 1.5}, {"id": True}, {"_id": ["c"]}, {"id": "d", "_id": "e"}, {"_id": " "}]

    written, rejects = cli_rows(
        tmp_path, [{**given, "text": TEXT} for given, _ in accepted + [(r, None) for r in refused]]
    )
    assert sorted(written) == sorted(expected for _, expected in accepted)
    assert [r["line"] for r in rejects] == [5, 6, 7, 8, 9]
    assert "'id'" in cli_rows(tmp_path, [{"text": TEXT}])[1][0]["reason"]  # the hint names both keys

    for given, expected in accepted:
        assert lentil.field(QUERY, {**given, "text": TEXT}).document_id == expected
        response = client.post("/v1/highlight", json={"query": QUERY, "documents": [{**given, "text": TEXT}]})
        assert response.status_code == 200 and response.json()["results"][0]["document_id"] == expected
    for given in refused:
        with pytest.raises((TypeError, ValueError)):
            lentil.field(QUERY, {**given, "text": TEXT})
        response = client.post("/v1/highlight", json={"query": QUERY, "documents": [{**given, "text": TEXT}]})
        assert response.status_code == 422, given


def test_text_and_sentences_one_rule_everywhere(tmp_path, lentil, client):
    sentences = ["The battery is lithium-ion.", "A full charge takes about 4.5 hours."]
    document = {"_id": "both", "text": "A different text, which the sentences replace.", "sentences": sentences}
    field = lentil.field(QUERY, document)
    assert [s.text for s in field.slots] == sentences

    written, _ = cli_rows(tmp_path, [document])
    assert [s["text"] for s in written["both"]["slots"]] == sentences
    assert written["both"]["score"] == pytest.approx(field.score, abs=1e-6)

    response = client.post("/v1/highlight", json={"query": QUERY, "documents": [document]})
    assert response.status_code == 200
    result = response.json()["results"][0]
    assert [s["text"] for s in result["sentences"]] == sentences
    assert result["score"] == pytest.approx(field.score, abs=1e-6)
