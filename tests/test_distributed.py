"""`--engine ray` on a local Ray cluster: the single-process jobs' outputs, and exactly once after a kill."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from spicy_lentil.frontends.cli import main
from tests.processes import CLI
from tests.test_jobs import BAD_LINES, kill_and_resume, write_corpus

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo_corpus.jsonl"


@pytest.fixture(scope="module")
def address():
    """A two-CPU cluster on this machine; its workers import this checkout."""
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def read_rows(path):
    return {row["_id"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_scores_match_the_single_process_job(tmp_path, address):
    corpus = tmp_path / "corpus.jsonl"
    expected = write_corpus(corpus, n=40)
    local, distributed = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert main(["score", "--query", "topic 3", str(corpus), "--out", str(local)]) == 1  # rows were rejected
    ray_job = ["--out", str(distributed), *_on_ray(address), "--batch-size", "8"]
    assert main(["score", "--query", "topic 3", str(corpus), *ray_job]) == 1
    a, b = read_rows(local), read_rows(distributed)
    assert set(a) == set(b) == expected
    ids = sorted(expected)
    assert np.allclose([a[i]["score"] for i in ids], [b[i]["score"] for i in ids], atol=1e-5)
    for i in ids:
        assert a[i]["active"] == b[i]["active"] and a[i]["truncated"] == b[i]["truncated"]
        assert [(s["start"], s["end"], s["text"]) for s in a[i]["slots"]] == [
            (s["start"], s["end"], s["text"]) for s in b[i]["slots"]
        ]
        assert np.allclose([s["score"] for s in a[i]["slots"]], [s["score"] for s in b[i]["slots"]], atol=1e-5)
    rejects = [json.loads(line) for line in (tmp_path / "ray.jsonl.rejects.jsonl").read_text().splitlines()]
    assert sorted(r["line"] for r in rejects) == sorted(line for line in BAD_LINES if line <= 40)


def test_ray_job_keeps_each_rows_given_sentences(tmp_path, address):
    """A pre-split row's sentences are its slots on Ray too, not a re-split of its text."""
    sentences = ["Vitamin D", "helps the gut absorb calcium", "so bones stay strong."]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"_id": "split", "sentences": sentences})
        + "\n"
        + json.dumps({"_id": "both", "text": "ignored when sentences are given", "sentences": sentences[::-1]})
        + "\n"
    )
    local, distributed = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert main(["score", "--query", "vitamin D and bones", str(corpus), "--out", str(local)]) == 0
    ray_job = ["--out", str(distributed), *_on_ray(address)]
    assert main(["score", "--query", "vitamin D and bones", str(corpus), *ray_job]) == 0
    a, b = read_rows(local), read_rows(distributed)
    assert [s["text"] for s in b["split"]["slots"]] == sentences
    assert [s["text"] for s in b["both"]["slots"]] == sentences[::-1]
    for i in ("split", "both"):
        assert b[i]["score"] == pytest.approx(a[i]["score"], abs=1e-5)
        assert [(s["start"], s["end"]) for s in a[i]["slots"]] == [(s["start"], s["end"]) for s in b[i]["slots"]]


def test_index_matches_the_single_process_index(tmp_path, address, lentil):
    corpus = tmp_path / "corpus.jsonl"
    lines = DEMO.read_text().splitlines()
    corpus.write_text("\n".join(lines[:20] + ["{broken"] + lines[20:]) + "\n")
    local, distributed = tmp_path / "local", tmp_path / "ray"
    assert main(["index", str(corpus), "--output", str(local), "--shard-size", "10"]) == 1
    assert main(["index", str(corpus), "--output", str(distributed), "--shard-size", "10", *_on_ray(address)]) == 1
    skip = {"corpus", "build_seconds"}
    manifests = [
        {k: v for k, v in json.loads((f / "manifest.json").read_text()).items() if k not in skip}
        for f in (local, distributed)
    ]
    assert manifests[0] == manifests[1] and len(manifests[0]["shards"]) == 5
    for shard in manifests[0]["shards"]:
        assert (local / shard["name"] / "docs.jsonl").read_text() == (
            distributed / shard["name"] / "docs.jsonl"
        ).read_text()
        for array in (local / shard["name"]).glob("*.npy"):
            mine, theirs = np.load(array), np.load(distributed / shard["name"] / array.name)
            assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
            assert np.allclose(mine.astype(np.float64), theirs.astype(np.float64), atol=1e-3), array.name
    assert json.loads((distributed / "rejects.jsonl").read_text())["line"] == 21
    for query in ("why do stars collapse", "how do vaccines train the immune system"):
        ours = lentil.search(str(local), query, top_k=5)
        theirs = lentil.search(str(distributed), query, top_k=5)
        assert [r["document_id"] for r in ours] == [r["document_id"] for r in theirs]
        assert np.allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=1e-5)


def test_killed_ray_job_resumes_with_every_id_exactly_once(tmp_path, address):
    corpus = tmp_path / "corpus.jsonl"
    expected = write_corpus(corpus, n=480)
    out = tmp_path / "out.jsonl"
    job = ["--out", str(out), "--batch-size", "4", *_on_ray(address)]
    command = [*CLI, "score", "--query", "topic 3", str(corpus), *job]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    kill_and_resume(command, out, expected, env)


def _presplit(text: str) -> list[str]:
    """A caller's own sentence split, finer than the slotter's (at commas too), so a path that re-splits shows."""
    return [piece for piece in re.split(r"(?<=[,.;:])\s+", text) if piece.strip()]


def _scores_of_every_path(tmp_path, address, lentil, query: str, documents: list[dict]) -> dict[str, list[float]]:
    """Each path's score of each document (`{"_id", "text" | "sentences"}`), in input order."""
    from fastapi.testclient import TestClient
    from haystack import Document as HaystackDocument
    from langchain_core.documents import Document as LangChainDocument
    from llama_index.core.schema import NodeWithScore, TextNode

    from spicy_lentil.frontends.integrations import Judge
    from spicy_lentil.frontends.integrations.haystack import SpicyLentilRanker
    from spicy_lentil.frontends.integrations.langchain import SpicyLentilCompressor
    from spicy_lentil.frontends.integrations.llama_index import SpicyLentilPostprocessor
    from spicy_lentil.frontends.server import create_app

    ids = [d["_id"] for d in documents]
    texts = [d.get("text") or " ".join(d["sentences"]) for d in documents]
    metadata = [{"sentences": d["sentences"]} if "sentences" in d else {} for d in documents]
    scores = {"python": lentil.score(query, documents)}

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in documents))
    for engine, flags in (("cli", []), ("ray", _on_ray(address))):
        out = tmp_path / f"{engine}.jsonl"
        assert main(["score", "--query", query, str(corpus), "--out", str(out), "--overwrite", *flags]) == 0
        rows = read_rows(out)
        scores[engine] = [rows[i]["score"] for i in ids]

    http = [{("id" if key == "_id" else key): value for key, value in d.items()} for d in documents]
    results = TestClient(create_app(lentil)).post("/v1/rerank", json={"query": query, "documents": http}).json()
    by_index = {r["index"]: r["relevance_score"] for r in results["results"]}
    scores["http"] = [by_index[i] for i in range(len(documents))]

    chain = SpicyLentilCompressor(lentil=lentil).compress_documents(
        [LangChainDocument(page_content=t, metadata=m, id=i) for i, t, m in zip(ids, texts, metadata)], query
    )
    scores["langchain"] = [{d.id: d.metadata["relevance_score"] for d in chain}[i] for i in ids]
    nodes = SpicyLentilPostprocessor(lentil=lentil).postprocess_nodes(
        [NodeWithScore(node=TextNode(text=t, id_=i, metadata=m)) for i, t, m in zip(ids, texts, metadata)],
        query_str=query,
    )
    scores["llama_index"] = [{n.node.node_id: n.score for n in nodes}[i] for i in ids]
    ranker = SpicyLentilRanker()
    ranker.judge = Judge(lentil)  # warmed up with the session's model
    ranked = ranker.run(query, [HaystackDocument(id=i, content=t, meta=m) for i, t, m in zip(ids, texts, metadata)])
    scores["haystack"] = [{d.id: d.score for d in ranked["documents"]}[i] for i in ids]
    return scores


def test_the_same_documents_get_the_same_scores_through_every_path(tmp_path, address, lentil):
    """30 documents, as text and pre-split: the local and Ray jobs, Python, HTTP and the three frameworks agree."""
    rows = [json.loads(line) for line in DEMO.read_text().splitlines()[:30]]
    query = "why do stars collapse into black holes"
    as_text = [{"_id": r["_id"], "text": r["text"]} for r in rows]
    presplit = [{"_id": r["_id"], "sentences": _presplit(r["text"])} for r in rows]
    by_form = {}
    for form, documents in (("text", as_text), ("sentences", presplit)):
        folder = tmp_path / form
        folder.mkdir()
        scores = _scores_of_every_path(folder, address, lentil, query, documents)
        for path, got in scores.items():
            assert got == pytest.approx(scores["python"], abs=1e-4), (form, path)
        by_form[form] = scores["python"]
    assert by_form["text"] != pytest.approx(by_form["sentences"], abs=1e-4)  # the forms differ, so each is tested


def _on_ray(address: str) -> list[str]:
    """The flags that run a command on the test cluster with two actors."""
    return ["--engine", "ray", "--address", address, "--concurrency", "2"]
