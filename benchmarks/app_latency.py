"""App latency: a query after warm-up over 100 documents, through the app's shared model.

    .venv/bin/python -m benchmarks.app_latency

100 documents: the 48 of the demo corpus and the first 52 SciFact abstracts. The app's
`SharedLentil` is loaded with them as its warm-up corpus (as the app does at start), then each of
the 10 demo queries is scored once; the issue's target is under 2 seconds.
"""

from __future__ import annotations

import json
import time

from benchmarks.common import SCIFACT_DIR, markdown_table, median, verdict
from benchmarks.render import publish

SECTION = "app-latency"
DOCUMENTS = 100
TARGET_S = 2.0


def documents() -> list[dict]:
    """The demo corpus, then SciFact abstracts up to DOCUMENTS."""
    from spicy_lentil.app.documents import demo_corpus

    docs = demo_corpus()
    with open(SCIFACT_DIR / "corpus.jsonl", encoding="utf-8") as handle:
        for _, line in zip(range(DOCUMENTS - len(docs)), handle):
            row = json.loads(line)
            docs.append({"_id": row["_id"], "title": row["title"], "text": row["text"]})
    return docs


def measure() -> dict:
    """Seconds of the model load with warm-up, and the median, slowest and fastest demo query after it."""
    import torch

    from spicy_lentil.app.documents import demo_queries
    from spicy_lentil.app.service import SharedLentil

    torch.set_num_threads(2)
    docs = documents()
    started = time.perf_counter()
    shared = SharedLentil.load(None, docs)
    warm = time.perf_counter() - started
    times = []
    for query in demo_queries():
        start = time.perf_counter()
        shared.fields(query, docs, shared.default_k)
        times.append(time.perf_counter() - start)
    return {"warm_up_s": warm, "query_s": {"median": median(times), "max": max(times), "min": min(times)}}


def render(result: dict) -> str:
    query = result["query_s"]
    return "\n".join([
        f"## App: query latency after warm-up ({DOCUMENTS} documents)",
        "",
        f"Model load + warm-up (encoding the {DOCUMENTS} documents once): {result['warm_up_s']:.1f} s. Then the 10 "
        f"demo queries, each scoring all {DOCUMENTS} documents through the app's shared model (`app/service.py`):",
        "",
        markdown_table(["median s", "max s", "min s"], [[f"{query[k]:.2f}" for k in ("median", "max", "min")]]),
        "",
        f"Target: under 2 s ({verdict(query['median'] < TARGET_S)} on the median).",
    ])


def main() -> None:
    publish(SECTION, __spec__.name, measure())


if __name__ == "__main__":
    main()
