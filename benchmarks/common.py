"""Shared helpers for the benchmark scripts: timing, the machine, results files and markdown.

Every script runs from the repo root as `python -m benchmarks.NAME`. Its `main()` measures and
saves the figures with `save_result` to `benchmarks/results/<section>.json` (committed, with the
date, machine and command of the run), and its pure `render(result)` turns that JSON into the
markdown of its section of BENCHMARKS.md; `python -m benchmarks.render` fills the file from every
results file. `render` formats the stored figures, selects, counts and compares them with targets,
but derives no measured figure from others (exact sums of counts aside): the results back-filled
from an earlier BENCHMARKS.md hold the published, rounded numbers, and a ratio of rounded numbers
need not round to the published ratio.

The scripts import only the standard library at module level (the measuring libraries inside the
functions that measure), so rendering needs neither torch nor the optional extras.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SCIFACT_DIR = (REPO_ROOT / ".." / "shared" / "data" / "scifact").resolve()
CACHE_DIR = REPO_ROOT / "cache"  # git-ignored
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()
DOMAINS = ("scifact", "wikiqa", "selqa")  # the datasets with sentence labels, each with a `val`
EVERYDAY = REPO_ROOT / "data" / "everyday.jsonl"  # hand-written cases from domains no dataset covers
PROVENANCE = ("date", "machine", "command")  # the fields `save_result` adds to every result


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    """The rows of a JSONL file (only the first `limit` if given), blank lines skipped."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if limit is not None and len(rows) >= limit:
                break
            if line.strip():
                rows.append(json.loads(line))
    return rows


# ---- timing ------------------------------------------------------------------------------------

def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of `fn()` in seconds over `repeats` runs (after `warmup` untimed runs), and all runs."""
    for _ in range(warmup):
        fn()
    times = [_timed(fn) for _ in range(repeats)]
    return statistics.median(times), times


def interleaved_times(
    conditions: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Times several conditions round-robin (A, B, A, B, ...) so machine drift hits them alike.

    Returns every run's wall time in seconds, per condition.
    """
    for _ in range(warmup):
        for fn in conditions.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in conditions}
    for _ in range(repeats):
        for name, fn in conditions.items():
            times[name].append(_timed(fn))
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# ---- the machine ---------------------------------------------------------------------------------

def contention_probe(calls: int = 30) -> dict[str, float]:
    """Median milliseconds of one layer norm over a (64, 40, 384) tensor at the current torch threads and at 1.

    Keyed by the thread count as a string, as JSON keeps it. On idle cores the multi-threaded
    time is at most the single-threaded one. When the cores are busy with other jobs, each
    parallel op waits for a descheduled OpenMP thread (a scheduler slice), so the multi-threaded
    time jumps far above the single-threaded one: then op count, not arithmetic, dominates timings.
    """
    import torch

    x = torch.randn(64, 40, 384)
    threads = torch.get_num_threads()
    result = {}
    try:
        for n in dict.fromkeys([threads, 1]):
            torch.set_num_threads(n)
            times = []
            with torch.inference_mode():
                for _ in range(5):
                    torch.nn.functional.layer_norm(x, (384,))
                for _ in range(calls):
                    start = time.perf_counter()
                    torch.nn.functional.layer_norm(x, (384,))
                    times.append(time.perf_counter() - start)
            result[str(n)] = 1e3 * statistics.median(times)
    finally:
        torch.set_num_threads(threads)
    return result


def contention_text(probe: dict[str, float]) -> str:
    return ", ".join(f"{ms:.2f} ms with {n} thread{'s' if int(n) > 1 else ''}" for n, ms in probe.items())


def machine_load_line(before: dict[str, float], after: dict[str, float]) -> str:
    """The markdown bullet that reads two `contention_probe`s, at the start and at the end of a run."""
    return (
        "- Machine load (`contention_probe`: one layer norm of a 64 × 40 × 384 tensor): "
        f"{contention_text(before)} at the start; {contention_text(after)} at the end. On idle cores 2 threads are "
        "no slower than 1 (~1 ms); when they are several times slower, the 2 cores were busy with other jobs and "
        "every parallel op waited for a descheduled OpenMP thread (~8 ms, a scheduler slice), which inflates "
        "op-heavy code (many small ops) far more than large matrix products. Compare with `--threads 1`."
    )


def machine_speed(repeats: int = 15) -> dict[str, float]:
    """One thread's matrix-multiply rate (GFLOPS) and memory-copy rate (GB/s) right now, to read a latency against.

    The machines are shared: the same code ran a search noticeably slower when neighbours were busy.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
        src, dst = torch.randn(16 * 2**20), torch.empty(16 * 2**20)  # 64 MiB each: beyond the caches
        matmul, _ = median_time(lambda: a @ b, repeats)
        copy, _ = median_time(lambda: dst.copy_(src), repeats)
    finally:
        torch.set_num_threads(threads)
    return {"gflops": 2 * 1024**3 / matmul / 1e9, "copy_gb_s": src.nbytes / copy / 1e9}


def machine_speed_text(speed: dict[str, float]) -> str:
    return f"{speed['gflops']:.0f} GFLOPS (1024^3 matmul), {speed['copy_gb_s']:.1f} GB/s (64 MiB copy), one thread"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what `nproc` prints
    except AttributeError:
        return os.cpu_count() or 0


def timing_arguments(parser, threads: int) -> None:
    """The flags every timing script takes: torch threads, the data folder, and --no-write."""
    parser.add_argument("--threads", type=int, default=threads, help="torch.set_num_threads (2 = the machine's cores)")
    parser.add_argument("--data", type=Path, default=SCIFACT_DIR)
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results and BENCHMARKS.md alone")


def start_timing(threads: int) -> dict[str, float]:
    """Sets torch's threads, logs the machine, and returns the contention probe taken before timing."""
    import torch

    torch.set_num_threads(threads)
    log(f"machine: {machine_line()}")
    probe = contention_probe()
    log(f"contention probe (layer norm of 64 x 40 x 384): {contention_text(probe)}")
    return probe


def machine_line() -> str:
    import torch

    return (
        f"`nproc` = {nproc()}, CPU {cpu_model()}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()} (set explicitly with `torch.set_num_threads`)"
    )


def command_line() -> str:
    """The command that is running, as one would retype it from the repo root."""
    python, *args = sys.orig_argv  # unlike sys.argv, it keeps `-m benchmarks.NAME`
    try:
        rel = os.path.relpath(python, os.getcwd())
        if not rel.startswith(".."):
            python = rel
    except ValueError:
        pass
    return f"cd {shlex.quote(os.getcwd())} && {shlex.join([python, *args])}"


# ---- results -------------------------------------------------------------------------------------

def save_result(section: str, script: str, data: dict, results_dir: Path = RESULTS_DIR) -> Path:
    """Writes `data` with this run's date, machine and command to `<results_dir>/<section>.json`.

    `script` is the module whose `render` reads the file (pass `__spec__.name`, which is the module's
    import name also under `python -m`). Returns the path.
    """
    reserved = {"section", "script", *PROVENANCE} & data.keys()
    if reserved:
        raise ValueError(f"result fields {sorted(reserved)} are set by save_result")
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    result = {"section": section, "script": script, "date": now, "machine": machine_line(), "command": command_line(),
              **data}
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{section}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


# ---- an encoder's cosine alone, on every domain -----------------------------------------------------

def cosine_scores(encoder) -> Callable[[str, Sequence[str]], list[float]]:
    """(query, sentences) -> the cosine of each sentence to the query under `encoder` (a Spicy Lentil `Encoder`)."""
    def scores(query: str, sentences: Sequence[str]) -> list[float]:
        q, *s = encoder.encode([query, *sentences], use_cache=False)
        return [float(v.embedding @ q.embedding) for v in s]
    return scores


def cosine_row(encoder) -> dict:
    """Slot MAP / MRR of the encoder's cosine over the labelled (question, document) pairs of every `val`
    (`DOMAINS`), and the everyday set's answer metrics: what an encoder gives the pathways to build on."""
    from spicy_lentil.training.data import load_data
    from spicy_lentil.training.evaluation import answer_case_metrics, read_answer_cases, slot_metrics

    scores = cosine_scores(encoder)
    row = {}
    for name in DOMAINS:
        val = load_data(SHARED_DATA / name, "val")
        labels, ranked = {}, {}
        for (query_id, doc_id), slots in val.slot_qrels.items():
            sentences = val.corpus.get(doc_id, {}).get("sentences") or []
            if query_id in val.queries and sentences:
                labels[f"{query_id}|{doc_id}"] = [int(i in slots) for i in range(len(sentences))]
                ranked[f"{query_id}|{doc_id}"] = scores(val.queries[query_id], sentences)
        metrics = slot_metrics(labels, ranked)
        row[name] = {"slot_map": metrics["slot_map"], "slot_mrr": metrics["slot_mrr"], "pairs": len(labels)}
    row["everyday"] = answer_case_metrics(read_answer_cases(EVERYDAY), scores)
    return row


# ---- SciFact val, split by whether the cited abstracts were seen in training ----------------------

def scifact_val_by_document_novelty() -> dict[str, dict[str, dict[str, int]]]:
    """SciFact val qrels in two parts: `seen` claims cite an abstract that some train claim also cites,
    `unseen` claims cite only abstracts no train claim cites.

    A reranker trained on `train` can learn which abstracts tend to be cited; only the `unseen`
    part shows what carries over to documents it never saw judged, as on other data.
    """
    from spicy_lentil.training.data import load_data

    train = load_data(SCIFACT_DIR, "train")
    val = load_data(SCIFACT_DIR, "val")
    train_docs = {doc for judged in train.qrels.values() for doc, relevance in judged.items() if relevance > 0}
    seen = {q: judged for q, judged in val.qrels.items() if any(r > 0 and d in train_docs for d, r in judged.items())}
    return {"all": val.qrels, "seen": seen, "unseen": {q: judged for q, judged in val.qrels.items() if q not in seen}}


def ndcg_by_document_novelty(run: dict[str, dict[str, float]],
                             parts: dict[str, dict[str, dict[str, int]]]) -> dict[str, float]:
    """nDCG@10 of one run on each part of `scifact_val_by_document_novelty()`."""
    from spicy_lentil.training.evaluation import ranking_metrics

    return {name: ranking_metrics(qrels, {q: run[q] for q in qrels if q in run})["ndcg@10"]
            for name, qrels in parts.items()}
