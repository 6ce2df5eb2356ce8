"""Batch scoring at scale: index throughput, search latency, memory and scaling, each measured in one run.

    .venv/bin/python benchmarks/batch.py [--only index|search|memory|scaling]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from common import CACHE_DIR, REPO_ROOT, SCIFACT_DIR, interleaved_times, machine_speed, markdown_table, median, write_section

from spicy_lentil import SpicyLentil
from spicy_lentil.data import load_data
from spicy_lentil.index import CorpusIndex
from spicy_lentil.index_builder import document_slots
from spicy_lentil.retrieval import FirstStage
from spicy_lentil.runtime import batch_workers, configure

ON_THE_FLY_QUERIES = 5
WARM_UP_QUERIES = 3
IDLE_PAUSE = 1.0  # seconds before each search of the idle row
SEARCH_BLOCKS = 4  # blocks of the 30 claims per setting, the settings' order reversed every other block
TOPICS = ["river", "engine", "protein", "market", "poem", "glacier", "vaccine", "compiler", "harvest", "orbit"]


def synthetic_corpus(path: Path, n: int) -> Path:
    """n short, distinct documents (two sentences each) as JSONL."""
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            a, b = TOPICS[i % 10], TOPICS[(i * 7 + 3) % 10]
            text = f"Report {i} describes how the {a} changed in year {1900 + i % 120}. It also mentions the {b}, item {i}."
            handle.write(json.dumps({"_id": f"s{i}", "text": text}) + "\n")
    return path


def bench_index(lentil: SpicyLentil) -> str:
    corpus = Path(tempfile.mkdtemp()) / "first1000.jsonl"
    with open(SCIFACT_DIR / "corpus.jsonl", encoding="utf-8") as src, open(corpus, "w", encoding="utf-8") as dst:
        for _, line in zip(range(1000), src):
            dst.write(line)
    docs = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()]
    slot_texts = [s.text for d in docs for s in document_slots(lentil.slotter, d)[0]]
    out = corpus.parent / "index"

    def build() -> None:
        shutil.rmtree(out, ignore_errors=True)
        CorpusIndex.build(corpus, out, lentil.encoder, lentil.slotter, show_progress_bar=False)

    def encode_alone() -> None:
        configure(parallel_batches=False)  # sentence-transformers' own way: intra-op threads on every core
        try:
            lentil.encoder.model.encode(slot_texts, batch_size=64)
        finally:
            configure()

    times = interleaved_times({"index": build, "encode": encode_alone}, repeats=2, warmup=0)
    ratio = median(times["encode"]) / median(times["index"])
    rows = [[name, f"{median(t):.1f}", " / ".join(f"{x:.1f}" for x in t), f"{len(docs) / median(t):.2f}"] for name, t in times.items()]
    return "\n".join([
        "## Index build throughput (first 1,000 SciFact abstracts)",
        "",
        f"{len(slot_texts)} slots. `index` = `CorpusIndex.build` (slotting, one encoder pass over slots and titles batched by token count, "
        "token embeddings and ids, document vectors, shards, BM25), encoder batches side by side on one thread each "
        "(the runtime's default); `encode` = sentence-transformers `encode` of the same slot texts alone, on torch's "
        "intra-op threads. Interleaved, 2 runs each.",
        "",
        markdown_table(["run", "median s", "runs s", "docs/s"], rows),
        "",
        f"Throughput ratio index / encode-only: **{ratio:.2f}** (target at least 0.9: {'PASS' if ratio >= 0.9 else 'FAIL'}).",
    ])


def bench_search(lentil: SpicyLentil) -> str:
    index = CorpusIndex.for_corpus(SCIFACT_DIR / "corpus.jsonl", lentil.encoder, lentil.slotter, CACHE_DIR)
    claims = list(load_data(SCIFACT_DIR, "val").queries.values())
    warm_up, queries = claims[30:30 + WARM_UP_QUERIES], claims[:30]
    first_stage = FirstStage()

    def timed_searches(pause: float = 0.0) -> list[float]:
        for query in warm_up:  # a running service: index pages read, allocator and thread pool warm
            lentil.search(index, query, top_k=10, candidates=100)
        seconds = []
        for query in queries:
            lentil.encoder.clear_cache()  # every search encodes its query, as a new query would
            time.sleep(pause)
            start = time.perf_counter()
            lentil.search(index, query, top_k=10, candidates=100)
            seconds.append(time.perf_counter() - start)
        return seconds

    # The runtime's default (batches side by side, one thread each); batches one at a time on all
    # cores' intra-op threads; and the default but with numpy's BLAS left on every core (what
    # `configure` prevents): SEARCH_BLOCKS blocks each, interleaved (ABC CBA ...), against drift.
    def default() -> None:
        configure()

    def sequential_batches() -> None:
        configure(parallel_batches=False)

    def blas_on_every_core() -> None:
        configure()
        threadpool_limits(os.cpu_count(), user_api="blas")

    settings = {"default": default, "sequential": sequential_batches, "blas": blas_on_every_core}
    speed_before = machine_speed()
    runs = {name: [] for name in settings}
    for block in range(SEARCH_BLOCKS):
        for name in (list(settings) if block % 2 == 0 else list(settings)[::-1]):
            settings[name]()
            runs[name] += timed_searches()
    configure()
    after_idle = timed_searches(pause=IDLE_PAUSE)
    speed_after = machine_speed()
    indexed, sequential, blas = runs["default"], runs["sequential"], runs["blas"]
    on_the_fly = []
    for query in queries[:ON_THE_FLY_QUERIES]:  # encoding 100 abstracts takes ~15 s a query: a few show the contrast
        # The same candidates, reranked while encoding their slots on the fly (cold encoder cache).
        encoding = lentil.encoder.encode([query])[0]
        signals = first_stage.signals(index, query, encoding.embedding.numpy())
        docs = first_stage.candidates(signals, 100)
        lentil.encoder.clear_cache()
        start = time.perf_counter()
        lentil.fields(query, [index.document(int(d)) for d in docs])
        on_the_fly.append(time.perf_counter() - start)
    ms = lambda xs: 1000 * median(xs)
    return "\n".join([
        f"## Search latency (SciFact, 5,183 abstracts, {len(queries)} val claims after {WARM_UP_QUERIES} warm-up claims, {SEARCH_BLOCKS} blocks per setting; on the fly: the first {ON_THE_FLY_QUERIES})",
        "",
        "`search` = first stage (BM25 + dense document + best-slot cosine, z-score fusion) over the whole corpus, "
        "then rerank of the top 100 from the index's stored slot encodings; every search encodes its query "
        "(the encoder's cache is cleared before each). Searches run back to back, as in a busy service; the "
        "idle row pauses before each, as a quiet service would (on this machine a search right after idling is slower). "
        "`on the fly` = rerank of the same 100 candidates with `fields`, encoding their slots (cold cache).",
        "",
        f"Machine speed (`common.machine_speed`) before the timed searches: {speed_before}; after: {speed_after}.",
        "",
        markdown_table(["path", "median ms", "p90 ms"], [
            [f"search with the index ({batch_workers()} batches at once, 1 thread each: the default)", f"{ms(indexed):.0f}", f"{1000 * np.percentile(indexed, 90):.0f}"],
            ["search with the index (one batch at a time, torch's threads)", f"{ms(sequential):.0f}", f"{1000 * np.percentile(sequential, 90):.0f}"],
            ["search with the index, the default but numpy's BLAS on every core", f"{ms(blas):.0f}", f"{1000 * np.percentile(blas, 90):.0f}"],
            [f"search with the index, the default, each search after {IDLE_PAUSE:.0f} s idle", f"{ms(after_idle):.0f}", f"{1000 * np.percentile(after_idle, 90):.0f}"],
            ["rerank, encoding on the fly", f"{ms(on_the_fly):.0f}", f"{1000 * np.percentile(on_the_fly, 90):.0f}"],
        ]),
        "",
        f"Batches side by side against one at a time: {median(sequential) / median(indexed):.2f}x faster. "
        f"BLAS held to one thread against every core: {median(blas) / median(indexed):.2f}x faster. "
        f"Index speed-up: {median(on_the_fly) / median(indexed):.1f}x. Target: median at most 150 ms "
        f"({'PASS' if ms(indexed) <= 150 else 'FAIL'}).",
    ])


def _score_subprocess(corpus: Path, out: Path) -> tuple[float, int]:
    """Runs `spicy-lentil score` in a fresh process; returns (seconds, peak RSS in MB)."""
    # VmHWM is this process image's own peak: getrusage's ru_maxrss also keeps the peak of the
    # forked copy of the parent from before exec (a benchmark process holding a whole index).
    code = (
        "import re, time\n"
        "from spicy_lentil.cli import main\n"
        "t = time.perf_counter()\n"
        f"main(['score', '--query', 'how did the river change', {str(corpus)!r}, '--out', {str(out)!r}])\n"
        "seconds = time.perf_counter() - t\n"
        "peak_kb = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "print(seconds, peak_kb // 1024)\n"
    )
    env = {**os.environ, "TQDM_DISABLE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, env=env, check=True)
    seconds, rss = result.stdout.strip().splitlines()[-1].split()
    return float(seconds), int(rss)


def bench_memory_and_scaling(sizes: list[int]) -> tuple[str, str]:
    folder = Path(tempfile.mkdtemp())
    runs = {n: _score_subprocess(synthetic_corpus(folder / f"c{n}.jsonl", n), folder / f"o{n}.jsonl") for n in sizes}
    peak = {n: rss for n, (_, rss) in runs.items()}
    memory = "\n".join([
        "## Memory of a streaming score job",
        "",
        "Peak RSS of `spicy-lentil score` (fresh process each, model load included) on short synthetic documents.",
        "",
        markdown_table(["documents", "peak RSS MB"], [[n, peak[n]] for n in sizes]),
        "",
        f"Ratio 20,000 / 2,000: **{peak[20000] / peak[2000]:.3f}** (target at most 1.2: "
        f"{'PASS' if peak[20000] / peak[2000] <= 1.2 else 'FAIL'}).",
    ])
    xs = np.array([n for n in sizes if n >= 1000], dtype=float)
    ys = np.array([runs[int(n)][0] for n in xs])
    slope, intercept = np.polyfit(xs, ys, 1)
    residual = float(np.max(np.abs(ys - (slope * xs + intercept)) / ys))
    scaling = "\n".join([
        "## Scaling of a streaming score job",
        "",
        "Wall time of `spicy-lentil score` in-process (model load included: it is the line's intercept), same runs as above.",
        "",
        markdown_table(["documents", "seconds", "ms per document"], [[int(n), f"{runs[int(n)][0]:.1f}", f"{1000 * runs[int(n)][0] / n:.2f}"] for n in xs]),
        "",
        f"Least-squares line: {1000 * slope:.2f} ms per document + {intercept:.1f} s; largest relative deviation "
        f"from the line {100 * residual:.1f}% (linear).",
    ])
    return memory, scaling


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=("index", "search", "memory", "scaling"), default=None)
    args = parser.parse_args()
    configure()  # as the `spicy-lentil` command does
    lentil = SpicyLentil.from_pretrained()
    if args.only in (None, "index"):
        write_section("batch-index", bench_index(lentil))
    if args.only in (None, "search"):
        write_section("batch-search", bench_search(lentil))
    if args.only in (None, "memory", "scaling"):
        memory, scaling = bench_memory_and_scaling([1000, 2000, 5000, 20000])
        write_section("batch-memory", memory)
        write_section("batch-scaling", scaling)


if __name__ == "__main__":
    main()
