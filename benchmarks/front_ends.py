"""The front ends against the Python API they call, and score jobs at scale: five sections from one script.

    nice -n 10 .venv/bin/python -m benchmarks.front_ends [--only app|http|jobs|ray]

- `app-latency`: the app's shared model warmed on 100 documents (the 48 demo ones, then SciFact abstracts), then
  each demo query scored once.
- `serve`: one real `spicy-lentil serve` process on a free localhost port; Cohere-shaped rerank requests of 20 demo
  documents over HTTP against the same calls in-process, alternated, then from 4 and 16 concurrent clients.
- `ray-jobs`: the demo corpus repeated to 2,000 rows, scored by one process and by Ray Data with 1 and 2 actors.
- `batch-memory` and `batch-scaling`: `spicy-lentil score` in a fresh process on 1,000 to 20,000 short synthetic
  documents: its peak RSS and wall time (one set of jobs gives both).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import median

from benchmarks.common import REPO_ROOT, SCIFACT_DIR, fill, markdown_table, read_jsonl, verdict
from benchmarks.harness import Times
from benchmarks.render import publish

DEMO_CORPUS = REPO_ROOT / "data" / "demo_corpus.jsonl"
APP_DOCUMENTS, APP_TARGET_S = 100, 2.0
HTTP_DOCUMENTS, HTTP_CLIENTS, HTTP_TARGET = 20, (1, 4, 16), 0.15  # documents per request; overhead at 1 client
HTTP_QUERIES = ["how do stars end their lives", "what causes inflation", "how does exercise affect the heart",
                "why do leaves change colour", "how are vaccines tested"]
START_TIMEOUT_S, RUN_TIMEOUT_S = 180, 900
RAY_DOCUMENTS, RAY_JOBS, RAY_TARGET = 2000, ("single process", "1 actor", "2 actors"), 0.9
RAY_REPEATS = 2  # runs of each job; the medians are compared
EXAMPLE_CORES = 160  # 10 nodes x 16 cores, the Ray projection's example
SCORE_SIZES, MEMORY_TARGET = (1000, 2000, 5000, 20000), 1.2  # peak RSS at 20,000 / at 2,000
TOPICS = ["river", "engine", "protein", "market", "poem", "glacier", "vaccine", "compiler", "harvest", "orbit"]


def write_jsonl(path: Path, rows) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    return path


# ---- app-latency ---------------------------------------------------------------------------------

def app_latency() -> dict:
    """Seconds of the model load with warm-up, and the median, slowest and fastest demo query after it."""
    from spicy_lentil.app.documents import demo_corpus, demo_queries
    from spicy_lentil.app.service import SharedLentil

    docs = demo_corpus()
    docs += [{k: row[k] for k in ("_id", "title", "text")}
             for row in read_jsonl(SCIFACT_DIR / "corpus.jsonl", APP_DOCUMENTS - len(docs))]
    times = Times()
    with times("warm-up"):
        shared = SharedLentil.load(None, docs)
    for query in demo_queries():
        with times("query"):
            shared.fields(query, docs, shared.default_k)
    query_s = times["query"]
    return {"warm_up_s": times["warm-up"][0], "query_s": {"median": median(query_s), "max": max(query_s),
                                                         "min": min(query_s)}}


# ---- serve ---------------------------------------------------------------------------------------

def start_server() -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "spicy_lentil", "serve", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the server did not start")


def concurrent(base: str, bodies: list[dict], clients: int) -> tuple[list[float], float]:
    """Latencies and wall seconds of `bodies` sent by `clients` threads, each with its own connection."""
    import httpx

    latencies, lock, queue = [], threading.Lock(), list(bodies)

    def client() -> None:
        with httpx.Client(timeout=300) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                started = time.perf_counter()
                http.post(f"{base}/v1/rerank", json=body).raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(RUN_TIMEOUT_S)
    return latencies, time.perf_counter() - started


def latency_row(calls: str, clients: int, latencies: list[float], wall: float) -> dict:
    import numpy as np

    return {"calls": calls, "clients": clients, "p50_ms": float(np.median(latencies)) * 1000,
            "p95_ms": float(np.percentile(latencies, 95)) * 1000, "requests_per_s": len(latencies) / wall}


def http_overhead(count: int) -> dict:
    """`count` rerank requests (a query and 20 demo documents, a different slice each) at 1 client over HTTP and
    in-process, alternated (the HTTP overhead), then over HTTP from more clients."""
    import httpx
    import numpy as np

    from spicy_lentil import SpicyLentil

    corpus = [row["text"] for row in read_jsonl(DEMO_CORPUS)]
    bodies = [{"query": HTTP_QUERIES[i % len(HTTP_QUERIES)],
               "documents": [corpus[(i * 7 + j) % len(corpus)] for j in range(HTTP_DOCUMENTS)]} for i in range(count)]
    lentil = SpicyLentil.from_pretrained()
    process, base = start_server()
    try:
        for body in bodies:  # warm both sides: every document's slots cached, allocator, connections
            httpx.post(f"{base}/v1/rerank", json=body, timeout=120)
            lentil.score(body["query"], body["documents"], show_progress_bar=False)
        times = Times()
        with httpx.Client(timeout=120) as client:
            for body in bodies:
                with times("http"):
                    client.post(f"{base}/v1/rerank", json=body).raise_for_status()
                with times("local"):
                    lentil.score(body["query"], body["documents"], show_progress_bar=False)
        http, local = times["http"], times["local"]
        rows = [latency_row("in-process `score`", 1, local, sum(local)), latency_row("HTTP", 1, http, sum(http))]
        rows += [latency_row("HTTP", clients, *concurrent(base, bodies, clients)) for clients in HTTP_CLIENTS[1:]]
    finally:
        process.terminate()
        process.wait(30)
    return {"requests": count, "rows": rows, "overhead": float(np.median(np.array(http) / np.array(local))) - 1.0}


# ---- ray-jobs ------------------------------------------------------------------------------------

def ray_job(name: str, source: Path, out: Path) -> tuple[float, float]:
    """Wall seconds of one job (model loads included) and the driver's CPU seconds."""
    from spicy_lentil import SpicyLentil
    from spicy_lentil.frontends import distributed
    from spicy_lentil.frontends.jobs import score_job
    from spicy_lentil.io import Rejects, read_documents

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    documents = read_documents([str(source)], Rejects(echo=False))
    if name == "single process":
        score_job(SpicyLentil.from_pretrained(), HTTP_QUERIES[0], documents, out, Rejects(echo=False),
                  show_progress_bar=False)
    else:
        distributed.score_job(HTTP_QUERIES[0], documents, out, Rejects(echo=False), concurrency=int(name.split()[0]),
                              show_progress_bar=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert len(out.read_text().splitlines()) == RAY_DOCUMENTS
    return wall, (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)


def ray_jobs() -> dict:
    """Each job's median rate against the single process's (RAY_REPEATS runs each, in turn), on a local Ray cluster
    started once beforehand, and the projection from the 1-actor rate and the driver's CPU."""
    import ray

    from spicy_lentil.frontends import distributed

    folder, rows = Path(tempfile.mkdtemp()), read_jsonl(DEMO_CORPUS)
    source = write_jsonl(folder / "corpus.jsonl", ({**rows[i % len(rows)], "_id": f"{rows[i % len(rows)]['_id']}#{i}"}
                                                   for i in range(RAY_DOCUMENTS)))
    ray.init(num_cpus=2, include_dashboard=False)
    distributed.connect()
    runs = {name: [] for name in RAY_JOBS}
    for repeat in range(RAY_REPEATS):  # in turn, the order flipped every repeat, against the drift of the machine
        for name in RAY_JOBS[::-1] if repeat % 2 else RAY_JOBS:
            # A fresh output each run: a score job resumes from the rows an existing output holds.
            runs[name].append(ray_job(name, source, folder / f"{name.replace(' ', '_')}-{repeat}.jsonl"))
    times = {name: (median(w for w, _ in r), median(c for _, c in r)) for name, r in runs.items()}
    single, per_actor = RAY_DOCUMENTS / times["single process"][0], RAY_DOCUMENTS / times["1 actor"][0]
    driver_cpu = times["2 actors"][1]
    driver_rate = RAY_DOCUMENTS / driver_cpu
    return {
        "jobs": [{"job": name, "wall_s": wall, "docs_per_s": RAY_DOCUMENTS / wall,
                  "ratio": RAY_DOCUMENTS / wall / single, "driver_cpu_s": cpu, "runs_s": [w for w, _ in runs[name]]}
                 for name, (wall, cpu) in times.items()],
        "repeats": RAY_REPEATS,
        "ratio": RAY_DOCUMENTS / times["2 actors"][0] / single,
        "projection": {"actor_docs_per_s": per_actor, "actor_docs_per_hour": per_actor * 3600,
                       "driver_cpu_s": driver_cpu, "driver_docs_per_s": driver_rate,
                       "driver_docs_per_hour": driver_rate * 3600, "actors_to_driver_cap": driver_rate / per_actor,
                       "example_actors_docs_per_hour": EXAMPLE_CORES * per_actor * 3600,
                       "example_job_docs_per_hour": min(EXAMPLE_CORES * per_actor, driver_rate) * 3600},
    }


# ---- batch-memory, batch-scaling -----------------------------------------------------------------

def score_process(corpus: Path, out: Path) -> tuple[float, int]:
    """Runs `spicy-lentil score` in a fresh process; returns (seconds, peak RSS in MB)."""
    # VmHWM is this process image's own peak: getrusage's ru_maxrss also keeps the peak of the forked copy of the
    # parent from before exec.
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


def score_jobs() -> tuple[dict, dict]:
    """One score job per size over n distinct two-sentence documents: peak RSS (`batch-memory`) and wall time with
    its least-squares line (`batch-scaling`)."""
    import numpy as np

    folder, runs = Path(tempfile.mkdtemp()), {}
    for n in SCORE_SIZES:
        rows = ({"_id": f"s{i}", "text": f"Report {i} describes how the {TOPICS[i % 10]} changed in year "
                 f"{1900 + i % 120}. It also mentions the {TOPICS[(i * 7 + 3) % 10]}, item {i}."} for i in range(n))
        runs[n] = score_process(write_jsonl(folder / f"c{n}.jsonl", rows), folder / f"o{n}.jsonl")
    xs, ys = np.array(SCORE_SIZES, dtype=float), np.array([runs[n][0] for n in SCORE_SIZES])
    slope, intercept = np.polyfit(xs, ys, 1)
    memory = {"peak_rss_mb": [{"documents": n, "mb": rss} for n, (_, rss) in runs.items()],
              "ratio": runs[20000][1] / runs[2000][1]}
    scaling = {"runs": [{"documents": n, "seconds": s, "ms_per_document": 1000 * s / n} for n, (s, _) in runs.items()],
               "ms_per_document": 1000 * float(slope), "intercept_s": float(intercept),
               "max_deviation": float(np.max(np.abs(ys - (slope * xs + intercept)) / ys))}
    return memory, scaling


# ---- sections ------------------------------------------------------------------------------------

def render(result: dict) -> str:
    section = result["section"]
    if section == "app-latency":
        query = result["query_s"]
        values = {"documents": APP_DOCUMENTS, "verdict": verdict(query["median"] < APP_TARGET_S),
                  "table": markdown_table(["median s", "max s", "min s"], [[f"{query[k]:.2f}" for k in query]])}
    elif section == "serve":
        values = {"documents": HTTP_DOCUMENTS, "ok": verdict(result["overhead"] <= HTTP_TARGET),
                  "table": markdown_table(["calls", "clients", "p50 ms", "p95 ms", "requests/s"], [
                      [r["calls"], r["clients"], f"{r['p50_ms']:.0f}", f"{r['p95_ms']:.0f}",
                       f"{r['requests_per_s']:.2f}"]
                      for r in result["rows"]])}
    elif section == "ray-jobs":
        values = {"documents": RAY_DOCUMENTS, "ok": verdict(result["ratio"] >= RAY_TARGET),
                  "table": markdown_table(["job", "median wall s (runs)", "docs/s", "ratio to single process",
                                           "driver CPU s"], [
                      [r["job"], f"{r['wall_s']:.1f} ({' / '.join(f'{w:.1f}' for w in r['runs_s'])})",
                       f"{r['docs_per_s']:.1f}", f"{r['ratio']:.2f}", f"{r['driver_cpu_s']:.1f}"]
                      for r in result["jobs"]])}
    elif section == "batch-memory":
        values = {"ok": verdict(result["ratio"] <= MEMORY_TARGET), "table": markdown_table(
            ["documents", "peak RSS MB"], [[r["documents"], r["mb"]] for r in result["peak_rss_mb"]])}
    else:
        values = {"deviation_percent": 100 * result["max_deviation"], "table": markdown_table(
            ["documents", "seconds", "ms per document"],
            [[r["documents"], f"{r['seconds']:.1f}", f"{r['ms_per_document']:.2f}"] for r in result["runs"]])}
    return fill(section, **result, **values)


def main() -> None:
    from spicy_lentil.runtime import configure

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("app", "http", "jobs", "ray"), default=None)
    parser.add_argument("--requests", type=int, default=48, help="HTTP requests per client count")
    args = parser.parse_args()
    configure()  # as the `spicy-lentil` command does
    if args.only in (None, "app"):
        publish("app-latency", __spec__.name, app_latency())
    if args.only in (None, "http"):
        publish("serve", __spec__.name, http_overhead(args.requests))
    if args.only in (None, "jobs"):
        memory, scaling = score_jobs()
        publish("batch-memory", __spec__.name, memory)
        publish("batch-scaling", __spec__.name, scaling)
    if args.only in (None, "ray"):  # last: the local Ray cluster stays up until the process ends
        publish("ray-jobs", __spec__.name, ray_jobs())


if __name__ == "__main__":
    main()
