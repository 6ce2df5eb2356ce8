"""Shared helpers for the benchmark scripts: timing, machine description and BENCHMARKS.md sections.

Every script owns one section of BENCHMARKS.md, delimited by `<!-- BEGIN name -->` and
`<!-- END name -->`, and rewrites only that section, so several scripts share the file.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import gc
import os
import platform
import re
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = REPO_ROOT / "BENCHMARKS.md"
SCIFACT_DIR = (REPO_ROOT / ".." / "shared" / "data" / "scifact").resolve()
CACHE_DIR = REPO_ROOT / "cache"  # git-ignored

FILE_HEADER = (
    "# Benchmarks\n\n"
    "Every figure below is produced by a script in `benchmarks/`; each section names the command that wrote it.\n"
)

if str(REPO_ROOT) not in sys.path:  # the scripts run as `python benchmarks/x.py` from the repo root
    sys.path.insert(0, str(REPO_ROOT))


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

def contention_probe(calls: int = 30) -> dict[int, float]:
    """Median milliseconds of one layer norm over a (64, 40, 384) tensor at the current torch threads and at 1.

    On idle cores the multi-threaded time is at most the single-threaded one (about 1 ms). When
    the cores are busy with other jobs, each parallel op waits for a descheduled OpenMP thread
    (a scheduler slice, ~8 ms), so the multi-threaded time jumps far above the single-threaded
    one: then op count, not arithmetic, dominates timings.
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
            result[n] = 1e3 * statistics.median(times)
    finally:
        torch.set_num_threads(threads)
    return result


def machine_speed(repeats: int = 15) -> str:
    """One thread's matrix-multiply rate and memory-copy rate right now, to read a latency against.

    The machines are shared: the same code ran a search 15-25% slower when neighbours were busy.
    One thread did 65-85 GFLOPS on a 1024^3 float32 matmul here, and about 9 GB/s copying 64 MiB.
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
    return f"{2 * 1024**3 / matmul / 1e9:.0f} GFLOPS (1024^3 matmul), {src.nbytes / copy / 1e9:.1f} GB/s (64 MiB copy), one thread"


def contention_text(probe: dict[int, float]) -> str:
    return ", ".join(f"{ms:.2f} ms with {n} thread{'s' if n > 1 else ''}" for n, ms in probe.items())


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


def machine_line() -> str:
    import torch

    return (
        f"`nproc` = {nproc()}, CPU {cpu_model()}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()} (set explicitly with `torch.set_num_threads`)"
    )


def command_line() -> str:
    """The command that is running, as one would retype it from the repo root."""
    argv = list(sys.argv)
    try:
        argv[0] = os.path.relpath(os.path.abspath(argv[0]), os.getcwd())
    except ValueError:
        pass
    python = sys.executable
    try:
        rel = os.path.relpath(python, os.getcwd())
        if not rel.startswith(".."):
            python = rel
    except ValueError:
        pass
    return f"cd {shlex.quote(os.getcwd())} && {shlex.join([python, *argv])}"


def provenance() -> str:
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"- Date: {now}\n- Machine: {machine_line()}\n- Command: `{command_line()}`\n"


# ---- BENCHMARKS.md -------------------------------------------------------------------------------

def write_section(name: str, markdown: str, path: Path | str = BENCHMARKS_MD, with_provenance: bool = True) -> None:
    """Replaces (or appends) the section `name` of BENCHMARKS.md with `markdown`.

    The section sits between `<!-- BEGIN name -->` and `<!-- END name -->`; the rest of the file is
    left as it is. The file is created with a header if missing. Unless `with_provenance` is False,
    the date, machine and command are inserted after the section's first heading line (or at its top).
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"section name must be [A-Za-z0-9_.-]+, got {name!r}")
    body = markdown.strip("\n")
    if with_provenance:
        lines = body.split("\n")
        if lines and lines[0].startswith("#"):
            body = "\n".join([lines[0], "", provenance().rstrip("\n"), *lines[1:]])
        else:
            body = provenance() + "\n" + body
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    section = f"{begin}\n{body}\n{end}"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:  # a lock, so concurrent scripts do not race
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            text = handle.read()
            if not text.strip():
                text = FILE_HEADER
            pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
            if pattern.search(text):
                text = pattern.sub(lambda _: section, text, count=1)
            else:
                text = text.rstrip("\n") + "\n\n" + section + "\n"
            handle.seek(0)
            handle.truncate()
            handle.write(text if text.endswith("\n") else text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


# ---- SciFact val, split by whether the cited abstracts were seen in training ----------------------

def scifact_val_by_document_novelty() -> dict[str, dict[str, dict[str, int]]]:
    """SciFact val qrels in two parts: `seen` claims cite an abstract that some train claim also cites,
    `unseen` claims cite only abstracts no train claim cites.

    A reranker trained on `train` can learn which abstracts tend to be cited; only the `unseen`
    part shows what carries over to documents it never saw judged, as on other data.
    """
    from spicy_lentil.data import load_data

    train = load_data(SCIFACT_DIR, "train")
    val = load_data(SCIFACT_DIR, "val")
    train_docs = {doc for judged in train.qrels.values() for doc, relevance in judged.items() if relevance > 0}
    seen = {q: judged for q, judged in val.qrels.items() if any(r > 0 and d in train_docs for d, r in judged.items())}
    return {"all": val.qrels, "seen": seen, "unseen": {q: judged for q, judged in val.qrels.items() if q not in seen}}


def ndcg_by_document_novelty(run: dict[str, dict[str, float]], parts: dict[str, dict[str, dict[str, int]]]) -> dict[str, float]:
    """nDCG@10 of one run on each part of `scifact_val_by_document_novelty()`."""
    from spicy_lentil.evaluation import ranking_metrics

    return {name: ranking_metrics(qrels, {q: run[q] for q in qrels if q in run})["ndcg@10"] for name, qrels in parts.items()}
