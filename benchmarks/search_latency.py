"""Search latency on SciFact (5,183 abstracts) under the runtime's settings, after idling, and against reranking
with encoding on the fly.

    .venv/bin/python -m benchmarks.search_latency

How search time grows with the corpus, and compressed against exact indexes, is in `index_cost`.
"""

from __future__ import annotations

import os
import time
from functools import partial
from statistics import median

from benchmarks.common import fill, markdown_table, verdict
from benchmarks.harness import Times, alternate, dataset, index_of, machine_speed
from benchmarks.render import publish

SECTION = "search-latency"
ON_THE_FLY_QUERIES = 5
WARM_UP_QUERIES = 3
IDLE_PAUSE = 1.0  # seconds before each search of the idle row
SEARCH_BLOCKS = 4  # blocks of the 30 claims per setting, the settings' order reversed every other block
TARGET_SEARCH_MS = 150
SEARCH_PATHS = {  # the rows of the search table, by the key of their timings
    "default": "search with the index ({workers} batches at once, 1 thread each: the default)",
    "sequential": "search with the index (one batch at a time, torch's threads)",
    "blas": "search with the index, the default but numpy's BLAS on every core",
    "idle": "search with the index, the default, each search after {idle:.0f} s idle",
    "on_the_fly": "rerank, encoding on the fly",
}


def search_latency(lentil) -> dict:
    """Search latency under the runtime's default (batches side by side, one thread each), batches one at a time on
    torch's intra-op threads, and the default with numpy's BLAS on every core (what `configure` prevents), in
    interleaved blocks (ABC CBA ...); then the default after idling, and reranking with encoding on the fly."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from spicy_lentil.corpus.first_stage import FirstStage
    from spicy_lentil.runtime import batch_workers, configure

    data = dataset("scifact")
    index = index_of(lentil, data)
    claims = list(data.queries.values())
    warm_up, queries = claims[30:30 + WARM_UP_QUERIES], claims[:30]
    runs = Times()

    def timed_searches(path: str, setting=configure, pause: float = 0.0) -> None:
        setting()
        for query in warm_up:  # a running service: index pages read, allocator and thread pool warm
            lentil.search(index, query, top_k=10, candidates=100)
        for query in queries:
            lentil.encoder.clear_cache()  # every search encodes its query, as a new query would
            time.sleep(pause)
            with runs(path):
                lentil.search(index, query, top_k=10, candidates=100)

    def blas_on_every_core() -> None:
        configure()
        threadpool_limits(os.cpu_count(), user_api="blas")

    settings = {"default": configure, "sequential": lambda: configure(parallel_batches=False),
                "blas": blas_on_every_core}
    speed_before = machine_speed()
    alternate({name: partial(timed_searches, name, setting) for name, setting in settings.items()}, SEARCH_BLOCKS,
              warmup=0, collect=False)  # interleaved (ABC CBA ...), against drift
    timed_searches("idle", pause=IDLE_PAUSE)
    speed_after = machine_speed()
    # Encoding 100 abstracts takes many seconds a query: a few show the contrast (cold encoder cache).
    first_stage = FirstStage()
    for query in queries[:ON_THE_FLY_QUERIES]:
        encoding = lentil.encoder.encode([query])[0]
        docs = first_stage.candidates(first_stage.signals(index, query, encoding.embedding.numpy()), 100)
        lentil.encoder.clear_cache()
        with runs("on_the_fly"):
            lentil.fields(query, [index.document(int(d)) for d in docs])
    default = median(runs["default"])
    return {"claims": len(queries), "workers": batch_workers(), "speed_before": speed_before,
            "speed_after": speed_after,
            "paths": {name: {"median_ms": 1000 * median(s), "p90_ms": 1000 * float(np.percentile(s, 90))}
                      for name, s in runs.items()},
            "speed_ups": {"parallel_batches": median(runs["sequential"]) / default,
                          "blas_one_thread": median(runs["blas"]) / default,
                          "index": median(runs["on_the_fly"]) / default}}


def render(result: dict) -> str:
    paths = result["paths"]
    return fill(SECTION, **result, warm_up=WARM_UP_QUERIES, blocks=SEARCH_BLOCKS, on_the_fly=ON_THE_FLY_QUERIES,
                ok=verdict(paths["default"]["median_ms"] <= TARGET_SEARCH_MS),
                table=markdown_table(["path", "median ms", "p90 ms"], [
                    [label.format(workers=result["workers"], idle=IDLE_PAUSE), f"{paths[key]['median_ms']:.0f}",
                     f"{paths[key]['p90_ms']:.0f}"] for key, label in SEARCH_PATHS.items()]))


def main() -> None:
    from spicy_lentil import SpicyLentil
    from spicy_lentil.runtime import configure

    configure()  # as the `spicy-lentil` command does
    publish(SECTION, __spec__.name, search_latency(SpicyLentil.from_pretrained()))


if __name__ == "__main__":
    main()
