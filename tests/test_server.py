"""The HTTP service: every endpoint, the Cohere and TEI shapes, each refusal, and /health during a long request."""

import math
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from spicy_lentil.frontends.server import create_app
from spicy_lentil.frontends.service_limits import Limits

# Cohere's documented rerank example (docs.cohere.com, "Rerank" API reference).
COHERE_EXAMPLE = {
    "model": "rerank-english-v3.0",
    "query": "What is the capital of the United States?",
    "top_n": 3,
    "return_documents": True,
    "documents": [
        "Carson City is the capital city of the American state of Nevada.",
        "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. "
        "Its capital is Saipan.",
        "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) is the "
        "capital of the United States. It is a federal district.",
        "Capitalization or capitalisation in English grammar is the use of a capital letter at the start of a word.",
        "Capital punishment has existed in the United States since before the United States was a country.",
    ],
}
# text-embeddings-inference's README example.
TEI_EXAMPLE = {"query": "What is Deep Learning?", "texts": ["Deep Learning is not...", "Deep learning is..."]}


@pytest.fixture(scope="module")
def client(lentil):
    return TestClient(
        create_app(lentil, "test-model", Limits(max_body_bytes=50_000, max_documents=8, max_document_chars=2_000))
    )


def test_cohere_rerank_example_best_first(client, lentil):
    response = client.post("/v1/rerank", json=COHERE_EXAMPLE)
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["id"], str) and "meta" in body
    results = body["results"]
    assert len(results) == 3
    assert results[0]["index"] == 2  # Washington, D.C.
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert results[0]["document"]["text"] == COHERE_EXAMPLE["documents"][2]
    expected = lentil.score(COHERE_EXAMPLE["query"], COHERE_EXAMPLE["documents"])
    assert scores[0] == pytest.approx(max(expected), abs=1e-6)


def test_cohere_rerank_objects_and_no_documents(client):
    documents = [
        {"text": "Paris is the capital of France.", "title": "France", "id": "fr"},
        {"sentences": ["Bananas are yellow.", "They grow in bunches."]},
    ]
    body = client.post("/v1/rerank", json={"query": "capital of France", "documents": documents}).json()
    assert [r["index"] for r in body["results"]] == [0, 1]
    assert all("document" not in r for r in body["results"])  # return_documents defaults to false, as in Cohere


def test_tei_rerank_example(client):
    response = client.post("/rerank", json={**TEI_EXAMPLE, "return_text": True})
    assert response.status_code == 200
    results = response.json()
    assert sorted(r["index"] for r in results) == [0, 1]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert all(0.0 <= r["score"] <= 1.0 for r in results)
    assert {r["index"]: r["text"] for r in results} == dict(enumerate(TEI_EXAMPLE["texts"]))
    raw = client.post("/rerank", json={**TEI_EXAMPLE, "raw_scores": True}).json()
    assert [r["index"] for r in raw] == [r["index"] for r in results]
    probability = {r["index"]: r["score"] for r in results}
    for r in raw:  # logits, not probabilities: the sigmoid of each is its calibrated score
        assert 1 / (1 + math.exp(-r["score"])) == pytest.approx(probability[r["index"]], abs=1e-5)
        assert r["score"] != pytest.approx(probability[r["index"]], abs=1e-3)


def test_highlight_fields_spans_and_attention(client, lentil):
    query = "How tall is the Eiffel Tower?"
    sentences = ["The Eiffel Tower is in Paris.", "It stands 330 metres tall.", "It opened in 1889."]
    body = client.post(
        "/v1/highlight",
        json={
            "query": query,
            "documents": [{"sentences": sentences}, "Cats purr."],
            "threshold": 0.05,
            "return_attention": True,
        },
    ).json()
    first = body["results"][0]
    assert [s["text"] for s in first["sentences"]] == sentences
    joined = " ".join(sentences)
    assert all(joined[s["start"] : s["end"]] == s["text"] for s in first["sentences"])  # spans into the joined text
    expected = lentil.field(query, sentences)
    assert [s["score"] for s in first["sentences"]] == pytest.approx([s.score for s in expected.slots], abs=1e-6)
    assert first["spans"] == [s for s in first["sentences"] if s["score"] >= 0.05]
    assert len(first["active"]) == lentil.pathways_per_query and set(first["gate"]) == set(
        lentil.describe()["pathways"]
    )
    assert len(first["pathway_attention"]) == len(sentences)
    plain = client.post("/v1/highlight", json={"query": query, "documents": ["Cats purr."]}).json()["results"][0]
    assert "pathway_attention" not in plain and "spans" not in plain


def test_prune_by_threshold_and_budget(client, lentil):
    query = "How tall is the Eiffel Tower?"
    documents = ["The Eiffel Tower is in Paris. It stands 330 metres tall. It opened in 1889.", "Cats purr. Dogs bark."]
    expected = lentil.prune(query, documents, threshold=0.1)
    body = client.post("/v1/prune", json={"query": query, "documents": documents, "threshold": 0.1}).json()
    assert [r["text"] for r in body["results"]] == [p.text for p in expected]
    for result, document in zip(body["results"], documents):
        assert all(document[s["start"] : s["end"]] == s["text"] for s in result["kept"])
        assert all(s["score"] >= 0.1 for s in result["kept"])
        assert 0.0 <= result["compression_rate"] <= 1.0
    budget = client.post("/v1/prune", json={"query": query, "documents": documents, "budget_tokens": 8}).json()
    assert sum(r["kept_tokens"] for r in budget["results"]) <= 8


def test_health_and_models(client, lentil):
    assert client.get("/health").json() == {"status": "ok"}
    model = client.get("/v1/models").json()["data"][0]
    assert model["id"] == "test-model"
    assert model["pathways_per_query"] == lentil.pathways_per_query
    assert model["encoder"] == lentil.encoder.name and len(model["calibration"]["slot"]) == 2
    assert model["calibration"]["slot_given_document"] is True  # clients learn what a slot score means
    assert client.get("/openapi.json").status_code == 200


def test_docs_need_nothing_from_the_network(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text
    assert "POST /v1/rerank" in page.text and "query, documents, top_n?" in page.text
    assert "://" not in page.text and "<script" not in page.text  # no CDN asset, nothing to load offline


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"query": "q"}, 422, "documents"),  # missing field
        ({"documents": ["a"]}, 422, "query"),
        ({"query": "q", "documents": [1]}, 422, "documents.0"),  # wrong type
        ({"query": "q", "documents": "a"}, 422, "documents"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, 422, "top_n"),
        ({"query": "q", "documents": [{"title": "no text"}]}, 422, "documents.0"),
        ({"query": "q", "documents": [{"text": "a", "id": "x", "_id": "y"}]}, 422, "documents[0]['_id']"),
        ({"query": "q", "documents": [{"text": "a", "id": 1.5}]}, 422, "documents.0"),
        ({"query": "q", "documents": [["a", " "]]}, 422, "documents[0][1]"),
        ({"query": "  ", "documents": ["a"]}, 422, "query"),
        ({"query": "q", "documents": ["a"] * 9}, 413, "documents"),  # too many documents
        ({"query": "q", "documents": ["a" * 2_001]}, 413, "documents.0"),  # too long a document
    ],
)
def test_bad_requests_name_the_field(client, body, status, field):
    response = client.post("/v1/rerank", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["field"] == field and error["message"]


def test_other_refusals(client):
    oversized = client.post("/v1/rerank", content=b"x" * 60_000, headers={"content-type": "application/json"})
    assert oversized.status_code == 413 and oversized.json()["error"]["field"] == "body"
    chunked = client.post(
        "/v1/rerank",
        content=iter([b"{" + b" " * 30_000, b" " * 30_000 + b"}"]),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413
    not_utf8 = client.post(
        "/v1/rerank", content=b'{"query": "q", "documents": ["a\xff"]}', headers={"content-type": "application/json"}
    )
    assert not_utf8.status_code == 400 and not_utf8.json()["error"]["field"] == "body"
    surrogate = client.post(
        "/v1/rerank", content=rb'{"query": "q\ud800", "documents": ["a"]}', headers={"content-type": "application/json"}
    )
    assert surrogate.status_code == 422 and surrogate.json()["error"]["field"] == "query"
    assert client.get("/nowhere").json()["error"]["message"] == "Not Found"
    assert client.post("/rerank", json={"query": "q", "texts": [3]}).json()["error"]["field"] == "texts.0"
    assert client.post("/v1/prune", json={"query": "q", "documents": ["a"]}).status_code == 422  # no rule given
    assert client.post("/v1/prune", json={"query": "q", "documents": ["a"], "threshold": 1.5}).status_code == 422
    assert (
        client.post("/v1/highlight", json={"query": "q", "documents": ["a"], "pathways_per_query": 0}).status_code
        == 422
    )


def test_malformed_json_is_a_400_at_its_position_and_the_key_is_checked_first(client, lentil):
    malformed = b'{"query": "q", "documents": [,]}'
    response = client.post("/v1/rerank", content=malformed, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "body"
    assert response.json()["error"]["message"].startswith("invalid JSON at position 29: ")
    guarded = TestClient(create_app(lentil, api_key="s3cret"))
    for body in (malformed, b'{"query": 3}'):
        refused = guarded.post("/v1/rerank", content=body, headers={"content-type": "application/json"})
        assert refused.status_code == 401 and refused.json()["error"]["field"] == "authorization"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"top_n": "2"}, "top_n"),
        ({"top_n": True}, "top_n"),
        ({"top_n": 2.0}, "top_n"),
        ({"return_documents": "yes"}, "return_documents"),
        ({"return_documents": 1}, "return_documents"),
        ({"query": 5}, "query"),
        ({"documents": [{"text": "a", "title": 7}]}, "documents.0"),
    ],
)
def test_types_are_strict(client, change, field):
    response = client.post("/v1/rerank", json={"query": "q", "documents": ["a"], **change})
    assert response.status_code == 422 and response.json()["error"]["field"] == field


def test_api_key(lentil):
    client = TestClient(create_app(lentil, api_key="s3cret"))
    request = {"query": "q", "texts": ["a"]}
    assert client.post("/rerank", json=request).status_code == 401
    assert client.post("/rerank", json=request, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/rerank", json=request, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.post("/rerank", json=request, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/v1/models").status_code == 401
    assert client.get("/health").status_code == 200


def test_the_api_key_guards_every_v1_endpoint_and_rerank(lentil):
    app = create_app(lentil, api_key="s3cret")
    client = TestClient(app)
    guarded = [
        (method, route.path)
        for route in app.routes
        if route.path.startswith("/v1/") or route.path == "/rerank"
        for method in getattr(route, "methods", ()) & {"GET", "POST"}
    ]
    assert {path for _, path in guarded} >= {"/v1/models", "/v1/rerank", "/rerank", "/v1/highlight", "/v1/prune"}
    body = {"query": "q", "documents": ["a"], "texts": ["a"], "threshold": 0.5}
    for method, path in guarded:
        refused = client.request(method, path, json=body if method == "POST" else None)
        assert refused.status_code == 401, (method, path, refused.status_code)
        allowed = client.request(method, path, json=body if method == "POST" else None, headers={"X-API-Key": "s3cret"})
        assert allowed.status_code != 401, (method, path)


class _HeldLentil:
    """The real model, whose scoring waits until the test lets it go: a request as long as the test needs."""

    def __init__(self, lentil):
        self.lentil, self.started, self.release = lentil, threading.Event(), threading.Event()

    def score(self, *args, **kwargs):
        self.started.set()
        assert self.release.wait(30)
        return self.lentil.score(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.lentil, name)


def test_health_answers_during_a_long_request(lentil):
    held = _HeldLentil(lentil)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(held), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        outcome = {}
        long_request = threading.Thread(
            target=lambda: outcome.update(response=httpx.post(f"{base}/rerank", json=TEI_EXAMPLE, timeout=60))
        )
        long_request.start()
        assert held.started.wait(20)
        health = httpx.get(f"{base}/health", timeout=5)  # would time out if scoring held the event loop
        assert health.status_code == 200 and "response" not in outcome
        held.release.set()
        long_request.join(60)
        assert outcome["response"].status_code == 200
    finally:
        held.release.set()
        server.should_exit = True
        thread.join(10)


def test_a_request_past_its_time_limit_is_a_503(lentil):
    client = TestClient(create_app(lentil, limits=Limits(max_request_seconds=1e-6)))
    response = client.post("/v1/rerank", json={"query": "q", "documents": ["a", "b"]})
    assert response.status_code == 503 and "limit of 1e-06 s" in response.json()["error"]["message"]


class _SlowLentil:
    """Scores each document it reads in 20 ms, counting them: how far a request got."""

    def __init__(self):
        self.read = 0

    def score(self, query, documents, **kwargs):
        scores = []
        for _ in documents:
            self.read += 1
            time.sleep(0.02)
            scores.append(0.5)
        return scores


def test_scoring_stops_when_the_client_disconnects():
    import asyncio
    import json

    slow = _SlowLentil()
    app = create_app(slow)
    body = json.dumps({"query": "q", "texts": ["a"] * 500}).encode()
    sent = []

    async def receive():
        if not sent:
            sent.append(True)
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}  # the client is gone once its request is read

    async def send(message):
        pass

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/rerank",
        "raw_path": b"/rerank",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    started = time.monotonic()
    asyncio.run(app(scope, receive, send))
    assert slow.read < 100 and time.monotonic() - started < 5  # all 500 would take 10 s
