"""App latency: a query after warm-up over 100 documents, through the app's shared model.

    .venv/bin/python -m benchmarks.app_latency

100 documents: the 48 of the demo corpus and the first 52 SciFact abstracts. The app's `SharedLentil` is loaded with
them as its warm-up corpus (as the app does at start), then each of the 10 demo queries is scored once.
"""

from __future__ import annotations

from statistics import median

from benchmarks.common import SCIFACT_DIR, fill, markdown_table, read_jsonl, verdict
from benchmarks.harness import Times
from benchmarks.render import publish

SECTION = "app-latency"
DOCUMENTS = 100
TARGET_S = 2.0


def measure() -> dict:
    """Seconds of the model load with warm-up, and the median, slowest and fastest demo query after it."""
    import torch

    from spicy_lentil.app.documents import demo_corpus, demo_queries
    from spicy_lentil.app.service import SharedLentil

    torch.set_num_threads(2)
    docs = demo_corpus()  # then SciFact abstracts up to DOCUMENTS
    docs += [{k: row[k] for k in ("_id", "title", "text")}
             for row in read_jsonl(SCIFACT_DIR / "corpus.jsonl", DOCUMENTS - len(docs))]
    times = Times()
    with times("warm-up"):
        shared = SharedLentil.load(None, docs)
    for query in demo_queries():
        with times("query"):
            shared.fields(query, docs, shared.default_k)
    query_s = times["query"]
    return {"warm_up_s": times["warm-up"][0], "query_s": {"median": median(query_s), "max": max(query_s),
                                                         "min": min(query_s)}}


def render(result: dict) -> str:
    query = result["query_s"]
    return fill(SECTION, **result, documents=DOCUMENTS, verdict=verdict(query["median"] < TARGET_S),
                table=markdown_table(["median s", "max s", "min s"], [[f"{query[k]:.2f}" for k in query]]))


def main() -> None:
    publish(SECTION, __spec__.name, measure())


if __name__ == "__main__":
    main()
