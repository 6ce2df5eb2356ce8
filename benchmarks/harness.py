"""The two harnesses the benchmark scripts are configurations of: a quality matrix and a timer.

Quality: `matrix(systems)` judges every `System` on every dataset's `val` (or its first `queries` queries by id) and
on the everyday set, and returns one table, {system: {dataset: metrics}}; `index_of` opens a split's cached corpus
index under a model's encoder; `cosine` and `field_scores` make the systems several scripts judge.

Timing: `Times` gathers wall seconds per key (`with times(key): ...`), so that medians, ratios and percentiles come
from one run; `alternate` times conditions in turn after a warm-up (A B | B A | ..., or A B | A B | ...), so that
the drift of a shared machine hits them alike. (`torch.utils.benchmark.Timer` times one statement in blocks and
alternates nothing, which is none of the scripts' protocols.) The timing scripts parse with `timing_parser`
and run inside `timing_run`, which reads the machine's load before and after.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from benchmarks.common import CACHE_DIR, DOMAINS, EVERYDAY, SCIFACT_DIR, SHARED_DATA, contention_text, log

Scores = Callable[[str, Sequence[str]], Sequence[float]]  # (query, sentences) -> a score per sentence


# ---- quality -------------------------------------------------------------------------------------

@dataclass
class System:
    """One row of a quality matrix: its metrics on a labelled split, and its scores on the everyday set."""

    split: Callable | None = None  # RelevanceData -> metrics
    sentences: Scores | None = None  # the everyday set's answer metrics read these
    paragraph: Callable[[str, Sequence[str]], float] | None = None  # the paragraph's own score, where there is one


def dataset(name: str, split: str = "val", queries: int | None = None):
    """A shared dataset's split, only its first `queries` queries (by id) if given."""
    from spicy_lentil.training.data import first_queries, load_data

    data = load_data(SHARED_DATA / name, split)
    return data if queries is None else first_queries(data, queries)


def index_of(lentil, data):
    """The corpus index of a split's corpus under `lentil`'s encoder, built once and cached under `cache/`."""
    from spicy_lentil.corpus.builder import cached_index

    return cached_index(data.corpus_path, lentil.encoder, lentil.slotter, CACHE_DIR)


def matrix(systems: dict[str, System], datasets: Sequence[str] = DOMAINS, queries: int | None = None,
           everyday: bool = True) -> dict[str, dict[str, dict]]:
    """{system: {dataset: metrics}}: every system on each dataset's `val` (loaded once) and on the everyday set."""
    from spicy_lentil.training.evaluation import answer_case_metrics, read_answer_cases

    splits = {name: dataset(name, queries=queries) for name in datasets}
    cases = read_answer_cases(EVERYDAY) if everyday else []
    table = {}
    for name, system in systems.items():
        table[name] = {dataset: system.split(data) for dataset, data in splits.items()} if system.split else {}
        if cases and system.sentences:
            table[name]["everyday"] = answer_case_metrics(cases, system.sentences, system.paragraph)
    return table


def cosine_scores(encoder) -> Scores:
    """(query, sentences) -> the cosine of each sentence to the query under `encoder` (a Spicy Lentil `Encoder`)."""
    def scores(query: str, sentences: Sequence[str]) -> list[float]:
        q, *s = encoder.encode([query, *sentences], use_cache=False)
        return [float(v.embedding @ q.embedding) for v in s]
    return scores


def sentence_scores(scores: Scores) -> System:
    """A system from its scores of a document's sentences: slot MAP / MRR over the labelled (question, document)
    pairs of a split, and the everyday set's answer metrics."""
    def split(data) -> dict:
        from spicy_lentil.training.evaluation import slot_metrics

        labels, ranked = {}, {}
        for (query_id, doc_id), slots in data.slot_qrels.items():
            sentences = data.corpus.get(doc_id, {}).get("sentences") or []
            if query_id in data.queries and sentences:
                labels[f"{query_id}|{doc_id}"] = [int(i in slots) for i in range(len(sentences))]
                ranked[f"{query_id}|{doc_id}"] = scores(data.queries[query_id], sentences)
        metrics = slot_metrics(labels, ranked)
        return {"slot_map": metrics["slot_map"], "slot_mrr": metrics["slot_mrr"], "pairs": len(labels)}
    return System(split, scores)


def cosine(encoder) -> System:
    """An encoder's cosine alone, what it gives the pathways to build on."""
    return sentence_scores(cosine_scores(encoder))


def field_scores(lentil, document: Callable[[Sequence[str]], object]) -> System:
    """A model's everyday scores: its sentences' and the paragraph's, from one `lentil.field(query,
    document(sentences))` per (query, paragraph)."""
    fields = {}

    def field(query, sentences):
        key = (query, tuple(sentences))
        if key not in fields:
            fields[key] = lentil.field(query, document(sentences))
        return fields[key]
    return System(sentences=lambda q, s: [x.score for x in field(q, s).slots], paragraph=lambda q, s: field(q, s).score)


def calibrated_probabilities(lentil, examples):
    """`calibration.example_probabilities` of scored examples under the model's own calibration."""
    from spicy_lentil.training.calibration import example_probabilities

    model = lentil.model
    return example_probabilities(examples, model.slot_calibration.tolist(), model.doc_calibration.tolist(),
                                 model.config.slot_given_document)


def scifact_val_by_document_novelty() -> dict[str, dict[str, dict[str, int]]]:
    """SciFact val qrels in parts: `seen` claims cite an abstract that some train claim also cites, `unseen` claims
    cite only abstracts no train claim cites (what carries over to documents never seen judged), and `all`."""
    train, data = dataset("scifact", "train"), dataset("scifact")
    train_docs = {doc for judged in train.qrels.values() for doc, relevance in judged.items() if relevance > 0}
    seen = {q: judged for q, judged in data.qrels.items() if any(r > 0 and d in train_docs for d, r in judged.items())}
    return {"all": data.qrels, "seen": seen, "unseen": {q: judged for q, judged in data.qrels.items() if q not in seen}}


def ndcg_by_document_novelty(run: dict[str, dict[str, float]],
                             parts: dict[str, dict[str, dict[str, int]]]) -> dict[str, float]:
    """nDCG@10 of one run on each part of `scifact_val_by_document_novelty()`."""
    from spicy_lentil.training.evaluation import ranking_metrics

    return {name: ranking_metrics(qrels, {q: run[q] for q in qrels if q in run})["ndcg@10"]
            for name, qrels in parts.items()}


# ---- timing --------------------------------------------------------------------------------------

class Times(dict):
    """Wall seconds per key: `with times(key): ...` appends the block's seconds to `times[key]`."""

    @contextmanager
    def __call__(self, key):
        start = time.perf_counter()
        yield
        self.setdefault(key, []).append(time.perf_counter() - start)


def alternate(conditions: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, flip: bool = True,
              collect: bool = True) -> Times:
    """Each condition timed `repeats` times, in turn, after `warmup` untimed rounds and with a gc.collect() before
    every timed call (unless not `collect`): A B | B A | A B ..., so that a linear drift of the machine hits them alike
    (A B | A B ... without `flip`)."""
    for _ in range(warmup):
        for fn in conditions.values():
            fn()
    times, order = Times(), list(conditions)
    for repeat in range(repeats):
        for name in (order[::-1] if flip and repeat % 2 else order):
            if collect:
                gc.collect()
            with times(name):
                conditions[name]()
    return times


def timing_parser(doc: str, threads: int) -> argparse.ArgumentParser:
    """A timing script's parser (its description the first paragraph of `doc`), with the flags every timing script
    takes: torch threads, the data folder, and --no-write."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=threads, help="torch.set_num_threads (2 = the machine's cores)")
    parser.add_argument("--data", type=Path, default=SCIFACT_DIR)
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results and BENCHMARKS.md alone")
    return parser


@contextmanager
def timing_run(threads: int):
    """Sets torch's threads and logs the machine; yields a dict holding the contention probe taken before the block
    (`probe_before`) and, once the block is done, the one taken after it (`probe_after`); logs the block's seconds."""
    import torch

    from benchmarks.common import machine_line

    torch.set_num_threads(threads)
    log(f"machine: {machine_line()}")
    load = {"probe_before": contention_probe()}
    log(f"contention probe (layer norm of 64 x 40 x 384): {contention_text(load['probe_before'])}")
    started = time.perf_counter()
    yield load
    log(f"done in {time.perf_counter() - started:.0f} s")
    load["probe_after"] = contention_probe()
    log(f"contention probe at the end: {contention_text(load['probe_after'])}")


def contention_probe(calls: int = 30) -> dict[str, float]:
    """Median milliseconds of one layer norm over a (64, 40, 384) tensor at the current torch threads and at 1, keyed
    by the thread count as a string (`templates/machine-load.md` says how to read it)."""
    import torch

    x, threads, result = torch.randn(64, 40, 384), torch.get_num_threads(), {}
    try:
        for n in dict.fromkeys([threads, 1]):
            torch.set_num_threads(n)
            with torch.inference_mode():
                times = alternate({"norm": lambda: torch.nn.functional.layer_norm(x, (384,))}, calls, warmup=5,
                                  collect=False)
            result[str(n)] = 1e3 * statistics.median(times["norm"])
    finally:
        torch.set_num_threads(threads)
    return result


def machine_speed(repeats: int = 15) -> dict[str, float]:
    """One thread's matrix-multiply rate (GFLOPS) and memory-copy rate (GB/s) right now, to read a latency against."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
        src, dst = torch.randn(16 * 2**20), torch.empty(16 * 2**20)  # 64 MiB each: beyond the caches
        matmul = statistics.median(alternate({"matmul": lambda: a @ b}, repeats)["matmul"])
        copy = statistics.median(alternate({"copy": lambda: dst.copy_(src)}, repeats)["copy"])
    finally:
        torch.set_num_threads(threads)
    return {"gflops": 2 * 1024**3 / matmul / 1e9, "copy_gb_s": src.nbytes / copy / 1e9}
