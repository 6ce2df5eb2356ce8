"""Batch scoring at scale: search latency, and the memory and scaling of streaming score jobs.

    .venv/bin/python -m benchmarks.batch [--only search|memory|scaling]

Sections: `batch-search`, and `batch-memory` with `batch-scaling` (one set of score jobs gives both). What an index
build costs is in `index_cost`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from statistics import median

from benchmarks.common import REPO_ROOT, fill, markdown_table, verdict
from benchmarks.harness import Times, alternate, dataset, index_of, machine_speed
from benchmarks.render import publish

ON_THE_FLY_QUERIES = 5
WARM_UP_QUERIES = 3
IDLE_PAUSE = 1.0  # seconds before each search of the idle row
SEARCH_BLOCKS = 4  # blocks of the 30 claims per setting, the settings' order reversed every other block
SCORE_SIZES = [1000, 2000, 5000, 20000]
TOPICS = ["river", "engine", "protein", "market", "poem", "glacier", "vaccine", "compiler", "harvest", "orbit"]
TARGET_SEARCH_MS = 150
TARGET_MEMORY_RATIO = 1.2
SEARCH_PATHS = {  # the rows of the search table, by the key of their timings
    "default": "search with the index ({workers} batches at once, 1 thread each: the default)",
    "sequential": "search with the index (one batch at a time, torch's threads)",
    "blas": "search with the index, the default but numpy's BLAS on every core",
    "idle": "search with the index, the default, each search after {idle:.0f} s idle",
    "on_the_fly": "rerank, encoding on the fly",
}


def bench_search(lentil) -> dict:
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


def score_subprocess(corpus: Path, out: Path) -> tuple[float, int]:
    """Runs `spicy-lentil score` in a fresh process; returns (seconds, peak RSS in MB)."""
    # VmHWM is this process image's own peak: getrusage's ru_maxrss also keeps the peak of the forked copy of the
    # parent from before exec (a benchmark process holding a whole index).
    code = (
        "import re, time\n"
        "from spicy_lentil.frontends.cli import main\n"
        "t = time.perf_counter()\n"
        f"main(['score', '--query', 'how did the river change', {str(corpus)!r}, '--out', {str(out)!r}])\n"
        "seconds = time.perf_counter() - t\n"
        "peak_kb = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "print(seconds, peak_kb // 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                            env={**os.environ, "TQDM_DISABLE": "1"}, check=True)
    seconds, rss = result.stdout.strip().splitlines()[-1].split()
    return float(seconds), int(rss)


def bench_memory_and_scaling(sizes: list[int]) -> tuple[dict, dict]:
    """One score job per size over n short, distinct synthetic documents (two sentences each): peak RSS
    (`batch-memory`) and wall time with its least-squares line (`batch-scaling`)."""
    import numpy as np

    folder, runs = Path(tempfile.mkdtemp()), {}
    for n in sizes:
        with open(folder / f"c{n}.jsonl", "w", encoding="utf-8") as handle:
            for i in range(n):
                a, b = TOPICS[i % 10], TOPICS[(i * 7 + 3) % 10]
                text = (f"Report {i} describes how the {a} changed in year {1900 + i % 120}. "
                        f"It also mentions the {b}, item {i}.")
                handle.write(json.dumps({"_id": f"s{i}", "text": text}) + "\n")
        runs[n] = score_subprocess(folder / f"c{n}.jsonl", folder / f"o{n}.jsonl")
    memory = {"peak_rss_mb": [{"documents": n, "mb": rss} for n, (_, rss) in runs.items()],
              "ratio": runs[20000][1] / runs[2000][1]}
    xs, ys = np.array(sizes, dtype=float), np.array([runs[n][0] for n in sizes])
    slope, intercept = np.polyfit(xs, ys, 1)
    scaling = {"runs": [{"documents": n, "seconds": s, "ms_per_document": 1000 * s / n} for n, (s, _) in runs.items()],
               "ms_per_document": 1000 * float(slope), "intercept_s": float(intercept),
               "max_deviation": float(np.max(np.abs(ys - (slope * xs + intercept)) / ys))}
    return memory, scaling


def render(result: dict) -> str:
    section = result["section"]
    if section == "batch-search":
        paths = result["paths"]
        values = {"warm_up": WARM_UP_QUERIES, "blocks": SEARCH_BLOCKS, "on_the_fly": ON_THE_FLY_QUERIES,
                  "ok": verdict(paths["default"]["median_ms"] <= TARGET_SEARCH_MS),
                  "table": markdown_table(["path", "median ms", "p90 ms"], [
                      [label.format(workers=result["workers"], idle=IDLE_PAUSE), f"{paths[key]['median_ms']:.0f}",
                       f"{paths[key]['p90_ms']:.0f}"] for key, label in SEARCH_PATHS.items()])}
    elif section == "batch-memory":
        values = {"ok": verdict(result["ratio"] <= TARGET_MEMORY_RATIO), "table": markdown_table(
            ["documents", "peak RSS MB"], [[r["documents"], r["mb"]] for r in result["peak_rss_mb"]])}
    else:
        values = {"deviation_percent": 100 * result["max_deviation"], "table": markdown_table(
            ["documents", "seconds", "ms per document"],
            [[r["documents"], f"{r['seconds']:.1f}", f"{r['ms_per_document']:.2f}"] for r in result["runs"]])}
    return fill(section, **result, **values)


def main() -> None:
    from spicy_lentil import SpicyLentil
    from spicy_lentil.runtime import configure

    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=("search", "memory", "scaling"), default=None)
    args = parser.parse_args()
    configure()  # as the `spicy-lentil` command does
    lentil = SpicyLentil.from_pretrained()
    if args.only in (None, "search"):
        publish("batch-search", __spec__.name, bench_search(lentil))
    if args.only in (None, "memory", "scaling"):
        memory, scaling = bench_memory_and_scaling(SCORE_SIZES)
        publish("batch-memory", __spec__.name, memory)
        publish("batch-scaling", __spec__.name, scaling)


if __name__ == "__main__":
    main()
