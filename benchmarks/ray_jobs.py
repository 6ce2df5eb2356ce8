"""Score jobs on Ray against the single-process job: the same 2,000 documents, one run, as ratios.

    nice -n 10 .venv/bin/python -m benchmarks.ray_jobs
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO_ROOT, fill, markdown_table, read_jsonl, verdict
from benchmarks.render import publish

SECTION = "ray-jobs"
DOCUMENTS = 2000
QUERY = "how do stars end their lives"
JOBS = ["single process", "1 actor", "2 actors"]
TARGET_RATIO = 0.9
EXAMPLE_CORES = 160  # 10 nodes x 16 cores, the projection's example


def corpus(path: Path) -> Path:
    """The demo corpus repeated to DOCUMENTS rows, each with its own id."""
    rows = read_jsonl(REPO_ROOT / "data" / "demo_corpus.jsonl")
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(DOCUMENTS):
            row = rows[i % len(rows)]
            handle.write(json.dumps({**row, "_id": f"{row['_id']}#{i}"}) + "\n")
    return path


def run(name: str, source: Path, out: Path) -> tuple[float, float]:
    """Wall seconds of one job (model loads included) and the driver's CPU seconds."""
    from spicy_lentil import SpicyLentil
    from spicy_lentil.frontends import distributed
    from spicy_lentil.frontends.jobs import score_job
    from spicy_lentil.io import Rejects, read_documents

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    documents = read_documents([str(source)], Rejects(echo=False))
    if name == "single process":
        score_job(SpicyLentil.from_pretrained(), QUERY, documents, out, Rejects(echo=False), show_progress_bar=False)
    else:
        distributed.score_job(QUERY, documents, out, Rejects(echo=False), concurrency=int(name.split()[0]),
                              show_progress_bar=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert len(out.read_text().splitlines()) == DOCUMENTS
    return wall, (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)


def measure() -> dict[str, tuple[float, float]]:
    """(wall s, driver CPU s) of each job, on a local Ray cluster started once beforehand."""
    import ray

    from spicy_lentil.frontends import distributed
    from spicy_lentil.runtime import configure

    configure()
    folder = Path(tempfile.mkdtemp())
    source = corpus(folder / "corpus.jsonl")
    ray.init(num_cpus=2, include_dashboard=False)
    distributed.connect()
    return {name: run(name, source, folder / f"{name.replace(' ', '_')}.jsonl") for name in JOBS}


def summarise(times: dict[str, tuple[float, float]]) -> dict:
    """The jobs' rates against the single process, and the projection from the 1-actor rate and the driver's CPU."""
    single = DOCUMENTS / times["single process"][0]
    per_actor = DOCUMENTS / times["1 actor"][0]
    driver_cpu = times["2 actors"][1]
    driver_rate = DOCUMENTS / driver_cpu
    return {
        "jobs": [{"job": name, "wall_s": wall, "docs_per_s": DOCUMENTS / wall, "ratio": DOCUMENTS / wall / single,
                  "driver_cpu_s": cpu} for name, (wall, cpu) in times.items()],
        "ratio": DOCUMENTS / times["2 actors"][0] / single,
        "projection": {"actor_docs_per_s": per_actor, "actor_docs_per_hour": per_actor * 3600,
                       "driver_cpu_s": driver_cpu, "driver_docs_per_s": driver_rate,
                       "driver_docs_per_hour": driver_rate * 3600, "actors_to_driver_cap": driver_rate / per_actor,
                       "example_actors_docs_per_hour": EXAMPLE_CORES * per_actor * 3600,
                       "example_job_docs_per_hour": min(EXAMPLE_CORES * per_actor, driver_rate) * 3600},
    }


def render(result: dict) -> str:
    rows = [[r["job"], f"{r['wall_s']:.1f}", f"{r['docs_per_s']:.1f}", f"{r['ratio']:.2f}", f"{r['driver_cpu_s']:.1f}"]
            for r in result["jobs"]]
    return fill(SECTION, **result, documents=DOCUMENTS, ok=verdict(result["ratio"] >= TARGET_RATIO),
                table=markdown_table(["job", "wall s", "docs/s", "ratio to single process", "driver CPU s"], rows))


def main() -> None:
    result = summarise(measure())
    publish(SECTION, __spec__.name, result)
    print(render(result))


if __name__ == "__main__":
    main()
