"""What a corpus index costs, compressed against exact, and how the cost grows with the corpus.

    python -m benchmarks.index_cost            # quality, latency and cost curves; writes the section
    python -m benchmarks.index_cost --sizes 1000 5000

Quality is a matrix of the exact and the compact index (built from the exact one's stored encodings) over every `val`;
the cost curve builds compact indexes of the first 1,000 and 5,000 SciFact abstracts (the 1,000 one from text, the
encoder's time measured) and of SciFact repeated ten times with distinct ids, and times `search` and the first stage.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from statistics import median

from benchmarks.common import CACHE_DIR, SHARED_DATA, fill, log, machine_load_line, markdown_table, verdict
from benchmarks.harness import System, Times, dataset, matrix, timing_run
from benchmarks.render import publish

SECTION = "index-cost"
COPIES = 10  # SciFact repeated this many times for the largest corpus
LATENCY_QUERIES = 40  # SciFact val claims timed per index
TARGET_BYTES = 30 * 1024  # per document, for the first 1,000 SciFact abstracts
TARGET_DELTA = 0.005  # slot MAP and nDCG@10: the compact index at most this much below the exact one
TARGET_LATENCY_RATIO = 1.05  # median search latency, compact / exact


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def exact_index(lentil, corpus: Path):
    from spicy_lentil.corpus.builder import build_index, cache_folder

    folder = cache_folder(corpus, lentil.encoder, CACHE_DIR, kind="index-exact")
    return build_index(corpus, folder, lentil.encoder, lentil.slotter, resume=True, token_codec=None)


def compact_index(lentil, corpus: Path, folder: Path, source=None, source_id=None):
    """A compact index of `corpus`, encoded afresh, or from `source`'s stored encodings."""
    from spicy_lentil.corpus.builder import build_index, stored_encodings

    encode = None if source is None else stored_encodings(source, source_id) if source_id else stored_encodings(source)
    return build_index(corpus, folder, lentil.encoder, lentil.slotter, resume=True, encode_shards=encode)


def quality(lentil) -> dict:
    """Per domain: the `val` evaluation over the exact and the compact index, and both indexes' bytes."""
    from spicy_lentil.corpus.builder import cache_folder
    from spicy_lentil.training.evaluation import evaluate

    def over(kind: str) -> System:
        def split(data) -> dict:
            index = exact = exact_index(lentil, data.corpus_path)
            if kind == "compact":
                folder = cache_folder(data.corpus_path, lentil.encoder, CACHE_DIR)
                index = compact_index(lentil, data.corpus_path, folder, exact)
            model = evaluate(lentil, data, index, show_progress_bar=False).model
            log(f"{data.name} {kind}: slot MAP {model['slot_map']:.4f}, nDCG@10 {model['ndcg@10']:.4f}")
            return {"documents": len(exact), "slot_map": model["slot_map"], "ndcg@10": model["ndcg@10"],
                    "bytes": folder_bytes(index.folder)}
        return System(split)
    table = matrix({kind: over(kind) for kind in ("exact", "compact")}, everyday=False)
    return {name: {"documents": table["exact"][name].pop("documents"),
                   **{kind: {k: v for k, v in table[kind][name].items() if k != "documents"} for kind in table}}
            for name in table["exact"]}


def search_latency(lentil, index, queries: list[str]) -> dict:
    """Median and p90 seconds of a whole search and of its first stage alone, over `queries`."""
    import numpy as np

    from spicy_lentil.corpus.first_stage import FirstStage

    lentil.search(index, queries[0], top_k=10)  # loads BM25 and the in-memory matrices
    times = Times()
    for query in queries:
        with times("whole"):
            lentil.search(index, query, top_k=10)
        embedding = lentil.encode_query(query).embedding.numpy()
        with times("first"):
            FirstStage().retrieve(index, query, embedding, 100)
    whole = times["whole"]
    return {"median_s": median(whole), "p90_s": float(np.percentile(whole, 90)),
            "first_stage_median_s": median(times["first"]), "times_s": whole}


def approximate_first_stage(lentil, index, queries: list[str]) -> dict:
    """The pooled first stage forced on (`approximate_from=1`) against the exact one: recall of the exact top 100,
    and both first stages' median seconds, measured in alternation."""
    import numpy as np

    from spicy_lentil.corpus.first_stage import FirstStage, bm25_scores

    stages = {"exact": FirstStage(), "approximate": FirstStage(approximate_from=1)}
    times, recalls = Times(), []
    for query in queries:
        embedding = lentil.encode_query(query).embedding.numpy()
        found = {}
        for name, stage in stages.items():
            with times(name):
                found[name] = set(stage.retrieve(index, query, embedding, 100).docs.tolist())
        with times("every_document"):  # what the approximate stage still reads for every document
            bm25_scores(index.bm25(), query, len(index)), index.doc_embeddings() @ embedding
        recalls.append(len(found["exact"] & found["approximate"]) / len(found["exact"]))
    return {"recall_at_100": float(np.mean(recalls)), "recall_at_100_min": float(np.min(recalls)),
            "pool": stages["approximate"].pool, "sample": stages["approximate"].sample,
            "approximate_from": FirstStage().approximate_from,
            **{f"{name}_median_s": median(t) for name, t in times.items()}}


def latency_ratio(lentil, queries: list[str]) -> dict:
    """SciFact's exact and compact indexes searched in alternation, query by query."""
    from spicy_lentil.corpus.builder import cache_folder
    from spicy_lentil.corpus.index import CorpusIndex

    corpus = SHARED_DATA / "scifact" / "corpus.jsonl"
    indexes = {"exact": exact_index(lentil, corpus),
               "compact": CorpusIndex.load(cache_folder(corpus, lentil.encoder, CACHE_DIR))}
    for index in indexes.values():
        lentil.search(index, queries[0], top_k=10)
    times = Times()
    for query in queries:
        for kind, index in indexes.items():
            with times(kind):
                lentil.search(index, query, top_k=10)
    return {kind: {"median_s": median(t), "times_s": t} for kind, t in times.items()}


def subset_corpus(lines: list[str], size: int) -> tuple[Path, object]:
    """The first `size` SciFact abstracts (SciFact repeated with distinct ids past its end) as a corpus file, and the
    map from a copy's id to the original's where there are copies."""
    path = CACHE_DIR / "index-cost-corpora" / f"scifact-{size}.jsonl"
    copies = [json.dumps({**row, "_id": f"{row['_id']}#{copy}"}, ensure_ascii=False) + "\n"
              for copy in range(-(-size // len(lines))) for row in map(json.loads, lines)] if size > len(lines) else []
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("".join((copies or lines)[:size]), encoding="utf-8")
    return path, (lambda doc: doc["_id"].split("#")[0]) if copies else None


def cost_curve(lentil, sizes: list[int], queries: list[str]) -> list[dict]:
    """Bytes, build seconds and search latency of compact SciFact indexes of the given sizes."""
    scifact = SHARED_DATA / "scifact" / "corpus.jsonl"
    lines = scifact.read_text(encoding="utf-8").splitlines(keepends=True)
    exact = exact_index(lentil, scifact)
    points, encoder_rate = [], None  # encoder seconds per token, from the build that ran the encoder
    for size in sizes:
        corpus, source_id = subset_corpus(lines, size)
        encoded = encoder_rate is None  # the first (smallest) size runs the encoder
        index = compact_index(lentil, corpus, CACHE_DIR / f"index-cost-{size}", None if encoded else exact, source_id)
        seconds = index.manifest["build_seconds"]
        tokens = sum(s["tokens"] for s in index.manifest["shards"])
        if encoded:  # the same corpus again from stored encodings: the difference is the encoder's time
            reused = compact_index(lentil, corpus, CACHE_DIR / f"index-cost-{size}-reused", exact, source_id)
            encoder_rate = max(seconds - reused.manifest["build_seconds"], 0.0) / tokens
        latency = search_latency(lentil, index, queries)
        point = {"documents": len(index), "bytes": folder_bytes(index.folder),
                 "codec_bytes": (index.folder / "token_codec.npy").stat().st_size, "tokens": tokens,
                 "slots": sum(s["slots"] for s in index.manifest["shards"]), "build_s": seconds, "encoder_ran": encoded,
                 "encoder_s_projected": 0.0 if encoded else encoder_rate * tokens, **latency,
                 "approximate": approximate_first_stage(lentil, index, queries)}
        log(f"approximate first stage at {size}: {point['approximate']}")
        log(f"{size}: {point['bytes'] / len(index) / 1024:.1f} KB/doc, build {seconds:.0f} s, search median "
            f"{latency['median_s'] * 1e3:.0f} ms (first stage {latency['first_stage_median_s'] * 1e3:.0f} ms)")
        points.append(point)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 5183 * COPIES])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with timing_run(args.threads) as load:
        from spicy_lentil import SpicyLentil

        lentil = SpicyLentil.from_pretrained()
        claims = list(dataset("scifact").queries.values())[:LATENCY_QUERIES]
        result = {"quality": quality(lentil), "latency": latency_ratio(lentil, claims),
                  "curve": cost_curve(lentil, sorted(args.sizes), claims)}
    publish(SECTION, __spec__.name, {**result, **load}, write=not args.no_write)


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Slope and intercept of the least-squares line through (x, y) points."""
    return tuple(statistics.linear_regression([x for x, _ in points], [y for _, y in points]))


def render(result: dict) -> str:
    latency, curve = result["latency"], result["curve"]
    rows = []
    for name, row in result["quality"].items():
        e, c, kb = row["exact"], row["compact"], row["documents"] * 1024
        ok = c["slot_map"] >= e["slot_map"] - TARGET_DELTA and c["ndcg@10"] >= e["ndcg@10"] - TARGET_DELTA
        rows.append([name, row["documents"], f"{e['slot_map']:.4f} → {c['slot_map']:.4f}",
                     f"{e['ndcg@10']:.4f} → {c['ndcg@10']:.4f}", f"{e['bytes'] / kb:.0f} → {c['bytes'] / kb:.1f}",
                     verdict(ok)])
    ratio = latency["compact"]["median_s"] / latency["exact"]["median_s"]
    first, last = curve[0], curve[-1]
    per_doc = first["bytes"] / first["documents"]
    growth = ""
    decade = [p for p in curve if 0.9 <= p["documents"] * 10 / last["documents"] <= 1.1]
    if decade:
        low = decade[0]
        growth = (f"\n- Growth over the decade {low['documents']:,} → {last['documents']:,}: search median "
                  f"×{last['median_s'] / low['median_s']:.2f}, first stage "
                  f"×{last['first_stage_median_s'] / low['first_stage_median_s']:.2f}, bytes per document "
                  f"×{(last['bytes'] / last['documents']) / (low['bytes'] / low['documents']):.2f}.")
    approx = last["approximate"]
    exact_slope, exact_at_0 = fit_line([(p["documents"], p["approximate"]["exact_median_s"]) for p in curve])
    # The approximate stage = what it reads of every document (a line through the rows) + its pool, a fixed cost,
    # taken at the largest size (at the smaller ones the pool and sample cover most of the corpus).
    linear_slope, linear_at_0 = fit_line([(p["documents"], p["approximate"]["every_document_median_s"]) for p in curve])
    pool_cost = approx["approximate_median_s"] - approx["every_document_median_s"]
    pooled_slope, pooled_at_0 = linear_slope, linear_at_0 + pool_cost
    crossing = (pooled_at_0 - exact_at_0) / (exact_slope - pooled_slope) if exact_slope > pooled_slope else None
    build_rate = last["documents"] / (last["build_s"] + last["encoder_s_projected"])
    driver = last["build_s"] / last["documents"]  # seconds a document of compressing, writing and BM25
    projection = {
        "linear_ms": linear_slope * 1e8, "pool_ms": pool_cost * 1e3, "disk_gb": last["bytes"] / last["documents"] *
        1e6 / 1024 ** 3, "exact_s": exact_at_0 + exact_slope * 1e6, "exact_ms": exact_slope * 1e8,
        "memory_gb": 4 * 384 * (last["documents"] + last["slots"]) / last["documents"] * 1e6 / 1024**3,
        "pooled_s": pooled_at_0 + pooled_slope * 1e6, "document_matrix_gb": 4 * 384 * 1e6 / 1024 ** 3,
        "rerank_ms": (last["median_s"] - last["first_stage_median_s"]) * 1e3, "build_rate": build_rate,
        "build_hours": 1e6 / build_rate / 3600, "driver_ms": driver * 1e3, "driver_hours": driver * 1e6 / 3600}
    return fill(
        SECTION, first=first, last=last, approx=approx, p=projection, growth=growth,
        quality_table=markdown_table(["domain", "documents", "slot MAP", "nDCG@10", "KB per document",
                                      f"at most {TARGET_DELTA} below"], rows),
        claims=len(latency["exact"]["times_s"]), exact_ms=latency["exact"]["median_s"] * 1e3,
        compact_ms=latency["compact"]["median_s"] * 1e3, ratio=ratio, target_ratio=TARGET_LATENCY_RATIO,
        ok_ratio=verdict(ratio <= TARGET_LATENCY_RATIO), kb_per_document=per_doc / 1024, target_kb=TARGET_BYTES // 1024,
        ok_bytes=verdict(per_doc <= TARGET_BYTES), codec_mb=first["codec_bytes"] / 1024 ** 2,
        curve_table=markdown_table(
            ["documents", "KB per document", "MB on disk", "build docs/s", "search ms, median / p90", "first stage ms"],
            [[f"{p['documents']:,}", f"{p['bytes'] / p['documents'] / 1024:.1f}", f"{p['bytes'] / 1024 ** 2:.0f}",
              f"{p['documents'] / (p['build_s'] + p['encoder_s_projected']):.1f}{'' if p['encoder_ran'] else ' *'}",
              f"{p['median_s'] * 1e3:.0f} / {p['p90_s'] * 1e3:.0f}", f"{p['first_stage_median_s'] * 1e3:.0f}"]
             for p in curve]),
        approx_table=markdown_table(
            ["documents", "recall of the exact top 100 (lowest)", "first stage ms, exact", "approximate"],
            [[f"{p['documents']:,}", f"{a['recall_at_100']:.3f} ({a['recall_at_100_min']:.2f})",
              f"{a['exact_median_s'] * 1e3:.0f}", f"{a['approximate_median_s'] * 1e3:.0f}"]
             for p in curve for a in [p["approximate"]]]),
        crossing=f"The lines cross at {crossing:,.0f} documents. " if crossing else "The lines do not cross. ",
        machine_load=machine_load_line(result["probe_before"], result["probe_after"]))


if __name__ == "__main__":
    main()
