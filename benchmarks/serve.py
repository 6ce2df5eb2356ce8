"""The HTTP service against the same calls in-process: one real `spicy-lentil serve` process on a free localhost
port, Cohere-shaped rerank requests of 20 documents, 1, 4 and 16 concurrent clients, one run.

    nice -n 10 .venv/bin/python -m benchmarks.serve [--requests 48]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
import time

from benchmarks.common import REPO_ROOT, fill, markdown_table, read_jsonl, verdict
from benchmarks.harness import Times
from benchmarks.render import publish

SECTION = "serve"
DOCUMENTS_PER_REQUEST = 20
CLIENTS = (1, 4, 16)
QUERIES = ["how do stars end their lives", "what causes inflation", "how does exercise affect the heart",
           "why do leaves change colour", "how are vaccines tested"]
START_TIMEOUT_S = 180
RUN_TIMEOUT_S = 900  # the whole benchmark stops (and says so) past this
TARGET_OVERHEAD = 0.15


def requests(count: int) -> list[dict]:
    """`count` rerank bodies, each a query and 20 demo documents (a different slice each time)."""
    corpus = [row["text"] for row in read_jsonl(REPO_ROOT / "data" / "demo_corpus.jsonl")]
    return [{"query": QUERIES[i % len(QUERIES)],
             "documents": [corpus[(i * 7 + j) % len(corpus)] for j in range(DOCUMENTS_PER_REQUEST)]}
            for i in range(count)]


def start_server() -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "spicy_lentil", "serve", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
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


def measure(bodies: list[dict]) -> dict:
    """The latency rows (in-process and HTTP at 1 client, HTTP at more) and the HTTP overhead at 1 client."""
    import httpx
    import numpy as np

    from spicy_lentil import SpicyLentil

    lentil = SpicyLentil.from_pretrained()
    process, base = start_server()
    try:
        for body in bodies:  # warm both sides: every document's slots cached, allocator, connections
            httpx.post(f"{base}/v1/rerank", json=body, timeout=120)
            lentil.score(body["query"], body["documents"], show_progress_bar=False)
        times = Times()  # each body over HTTP and in-process, alternated so both see the same machine
        with httpx.Client(timeout=120) as client:
            for body in bodies:
                with times("http"):
                    client.post(f"{base}/v1/rerank", json=body).raise_for_status()
                with times("local"):
                    lentil.score(body["query"], body["documents"], show_progress_bar=False)
        http, local = times["http"], times["local"]
        rows = [latency_row("in-process `score`", 1, local, sum(local)), latency_row("HTTP", 1, http, sum(http))]
        rows += [latency_row("HTTP", clients, *concurrent(base, bodies, clients)) for clients in CLIENTS[1:]]
    finally:
        process.terminate()
        process.wait(30)
    return {"rows": rows, "overhead": float(np.median(np.array(http) / np.array(local))) - 1.0}


def render(result: dict) -> str:
    rows = [[r["calls"], r["clients"], f"{r['p50_ms']:.0f}", f"{r['p95_ms']:.0f}", f"{r['requests_per_s']:.2f}"]
            for r in result["rows"]]
    return fill(SECTION, **result, documents=DOCUMENTS_PER_REQUEST, ok=verdict(result["overhead"] <= TARGET_OVERHEAD),
                table=markdown_table(["calls", "clients", "p50 ms", "p95 ms", "requests/s"], rows))


def main() -> None:
    from spicy_lentil.runtime import configure

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=48, help="requests per client count")
    args = parser.parse_args()
    configure()
    result = {"requests": args.requests, **measure(requests(args.requests))}
    publish(SECTION, __spec__.name, result)
    print(render(result))


if __name__ == "__main__":
    main()
