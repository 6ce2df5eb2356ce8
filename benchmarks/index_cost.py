"""What a corpus index costs, compressed against exact, and how the cost grows with the corpus.

    python -m benchmarks.index_cost            # quality, latency and cost curves; writes the section
    python -m benchmarks.index_cost --sizes 1000 5000

Quality: every `val` split is evaluated (first stage, rerank, labelled slots) over the exact index of
its corpus (token vectors float16, embeddings float32) and over the compact one (token vectors as
faiss IVF-PQ codes, embeddings float16). The compact index is built from the exact one's stored
encodings (`builder.stored_encodings`), so the two differ only by compression.

Cost curves: compact indexes of the first 1,000 and 5,000 SciFact abstracts, and of SciFact repeated
ten times with distinct ids (51,830 documents). The 1,000 one is built from text (the encoder runs);
the others reuse the exact index's encodings, and their encoder time is added at the rate the 1,000
build measured (marked as such). Search latency is the median and p90 of `SpicyLentil.search` over the
same SciFact `val` claims, with the first stage timed on its own; at every size the approximate first
stage is also forced on, timed against the exact one and its top 100 compared with the exact one's.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchmarks.common import (
    CACHE_DIR,
    DOMAINS,
    SHARED_DATA,
    log,
    machine_load_line,
    markdown_table,
    median,
    start_timing,
    verdict,
)
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

    encode = None
    if source is not None:
        encode = stored_encodings(source, source_id) if source_id else stored_encodings(source)
    return build_index(corpus, folder, lentil.encoder, lentil.slotter, resume=True, encode_shards=encode)


def search_latency(lentil, index, queries: list[str]) -> dict:
    """Median and p90 seconds of a whole search and of its first stage alone, over `queries`."""
    import time

    import numpy as np

    from spicy_lentil.corpus.first_stage import FirstStage

    lentil.search(index, queries[0], top_k=10)  # loads BM25 and the in-memory matrices
    whole, first = [], []
    for query in queries:
        start = time.perf_counter()
        lentil.search(index, query, top_k=10)
        whole.append(time.perf_counter() - start)
        embedding = lentil.encode_query(query).embedding.numpy()
        start = time.perf_counter()
        FirstStage().retrieve(index, query, embedding, 100)
        first.append(time.perf_counter() - start)
    return {
        "median_s": median(whole),
        "p90_s": float(np.percentile(whole, 90)),
        "first_stage_median_s": median(first),
        "times_s": whole,
    }


def approximate_first_stage(lentil, index, queries: list[str]) -> dict:
    """The pooled first stage forced on (`approximate_from=1`) against the exact one: recall of the exact
    top 100, and both first stages' median seconds, measured in alternation."""
    import time

    import numpy as np

    from spicy_lentil.corpus.first_stage import FirstStage, bm25_scores

    stages = {"exact": FirstStage(), "approximate": FirstStage(approximate_from=1)}
    times = {name: [] for name in [*stages, "every_document"]}
    recalls = []
    for query in queries:
        embedding = lentil.encode_query(query).embedding.numpy()
        found = {}
        for name, stage in stages.items():
            start = time.perf_counter()
            found[name] = set(stage.retrieve(index, query, embedding, 100).docs.tolist())
            times[name].append(time.perf_counter() - start)
        start = time.perf_counter()  # what the approximate stage still reads for every document
        bm25_scores(index.bm25(), query, len(index)), index.doc_embeddings() @ embedding
        times["every_document"].append(time.perf_counter() - start)
        recalls.append(len(found["exact"] & found["approximate"]) / len(found["exact"]))
    return {
        "recall_at_100": float(np.mean(recalls)),
        "recall_at_100_min": float(np.min(recalls)),
        "pool": stages["approximate"].pool,
        "sample": stages["approximate"].sample,
        "approximate_from": FirstStage().approximate_from,
        **{f"{name}_median_s": median(t) for name, t in times.items()},
    }


def quality(lentil) -> dict:
    """Per domain: the `val` evaluation over the exact and the compact index, and both indexes' bytes."""
    from spicy_lentil.corpus.builder import cache_folder
    from spicy_lentil.training.data import load_data
    from spicy_lentil.training.evaluation import evaluate

    rows = {}
    for name in DOMAINS:
        data = load_data(SHARED_DATA / name, "val")
        exact = exact_index(lentil, data.corpus_path)
        folder = cache_folder(data.corpus_path, lentil.encoder, CACHE_DIR)
        compact = compact_index(lentil, data.corpus_path, folder, exact)
        row = {"documents": len(exact)}
        for kind, index in (("exact", exact), ("compact", compact)):
            model = evaluate(lentil, data, index, show_progress_bar=False).model
            row[kind] = {"slot_map": model["slot_map"], "ndcg@10": model["ndcg@10"]}
            row[kind]["bytes"] = folder_bytes(index.folder)
            log(f"{name} {kind}: slot MAP {model['slot_map']:.4f}, nDCG@10 {model['ndcg@10']:.4f}")
        rows[name] = row
    return rows


def latency_ratio(lentil, queries: list[str]) -> dict:
    """SciFact's exact and compact indexes searched in alternation, query by query."""
    import time

    from spicy_lentil.corpus.builder import cache_folder
    from spicy_lentil.corpus.index import CorpusIndex

    corpus = SHARED_DATA / "scifact" / "corpus.jsonl"
    indexes = {"exact": exact_index(lentil, corpus)}
    indexes["compact"] = CorpusIndex.load(cache_folder(corpus, lentil.encoder, CACHE_DIR))
    times = {kind: [] for kind in indexes}
    for index in indexes.values():
        lentil.search(index, queries[0], top_k=10)
    for query in queries:
        for kind, index in indexes.items():
            start = time.perf_counter()
            lentil.search(index, query, top_k=10)
            times[kind].append(time.perf_counter() - start)
    return {kind: {"median_s": median(t), "times_s": t} for kind, t in times.items()}


def write_subset(rows: list[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("".join(rows), encoding="utf-8")
    return path


def cost_curve(lentil, sizes: list[int], queries: list[str]) -> list[dict]:
    """Bytes, build seconds and search latency of compact SciFact indexes of the given sizes."""
    scifact = SHARED_DATA / "scifact" / "corpus.jsonl"
    lines = scifact.read_text(encoding="utf-8").splitlines(keepends=True)
    exact = exact_index(lentil, scifact)
    points, encoder_rate = [], None  # encoder seconds per token, from the build that ran the encoder
    for size in sizes:
        folder = CACHE_DIR / f"index-cost-{size}"
        if size <= len(lines):
            corpus = write_subset(lines[:size], CACHE_DIR / "index-cost-corpora" / f"scifact-{size}.jsonl")
            source_id = None
        else:
            copies = []
            for copy in range(-(-size // len(lines))):
                for line in lines:
                    row = json.loads(line)
                    row["_id"] = f"{row['_id']}#{copy}"
                    copies.append(json.dumps(row, ensure_ascii=False) + "\n")
            corpus = write_subset(copies[:size], CACHE_DIR / "index-cost-corpora" / f"scifact-{size}.jsonl")
            source_id = lambda doc: doc["_id"].split("#")[0]  # noqa: E731
        encoded = encoder_rate is None  # the first (smallest) size runs the encoder
        index = compact_index(lentil, corpus, folder, None if encoded else exact, source_id)
        seconds = index.manifest["build_seconds"]
        tokens = sum(s["tokens"] for s in index.manifest["shards"])
        if encoded:  # the same corpus again from stored encodings: the difference is the encoder's time
            reused = compact_index(lentil, corpus, CACHE_DIR / f"index-cost-{size}-reused", exact, source_id)
            encoder_rate = max(seconds - reused.manifest["build_seconds"], 0.0) / tokens
        latency = search_latency(lentil, index, queries)
        point = {
            "documents": len(index),
            "bytes": folder_bytes(index.folder),
            "codec_bytes": (index.folder / "token_codec.npy").stat().st_size,
            "tokens": tokens,
            "slots": sum(s["slots"] for s in index.manifest["shards"]),
            "build_s": seconds,
            "encoder_ran": encoded,
            "encoder_s_projected": 0.0 if encoded else encoder_rate * tokens,
            **latency,
        }
        point["approximate"] = approximate_first_stage(lentil, index, queries)
        log(f"approximate first stage at {size}: {point['approximate']}")
        log(
            f"{size}: {point['bytes'] / len(index) / 1024:.1f} KB/doc, build {seconds:.0f} s, search median "
            f"{latency['median_s'] * 1e3:.0f} ms (first stage {latency['first_stage_median_s'] * 1e3:.0f} ms)"
        )
        points.append(point)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 5183 * COPIES])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from spicy_lentil import SpicyLentil
    from spicy_lentil.training.data import load_data

    probe = start_timing(args.threads)
    lentil = SpicyLentil.from_pretrained()
    claims = list(load_data(SHARED_DATA / "scifact", "val").queries.values())[:LATENCY_QUERIES]
    result = {"quality": quality(lentil)}
    result["latency"] = latency_ratio(lentil, claims)
    result["curve"] = cost_curve(lentil, sorted(args.sizes), claims)
    result["probe_before"], result["probe_after"] = probe, start_timing(args.threads)
    if args.no_write:
        print(render(result))
    else:
        publish(SECTION, __spec__.name, result)


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Slope and intercept of the least-squares line through (x, y) points."""
    return tuple(statistics.linear_regression([x for x, _ in points], [y for _, y in points]))


def render(result: dict) -> str:
    quality, latency, curve = result["quality"], result["latency"], result["curve"]
    lines = ["## Index cost: compressed token vectors, and the cost as the corpus grows", ""]
    lines.append(
        "Compact (the default): token vectors as faiss `IVF1024,PQ32` codes (the nearest of 1,024 k-means "
        "centroids plus 32 bytes of product-quantised residual, ColBERTv2's scheme), embeddings float16. "
        "Exact (`spicy-lentil index --exact`): token vectors float16, embeddings float32. The compact index "
        "below is built from the exact one's stored encodings, so the two differ only by compression."
    )
    lines += ["", "### Quality on every `val` split, compact against exact", ""]
    rows = []
    for name, row in quality.items():
        e, c = row["exact"], row["compact"]
        ok = c["slot_map"] >= e["slot_map"] - TARGET_DELTA and c["ndcg@10"] >= e["ndcg@10"] - TARGET_DELTA
        rows.append(
            [
                name,
                row["documents"],
                f"{e['slot_map']:.4f} → {c['slot_map']:.4f}",
                f"{e['ndcg@10']:.4f} → {c['ndcg@10']:.4f}",
                f"{e['bytes'] / row['documents'] / 1024:.0f} → {c['bytes'] / row['documents'] / 1024:.1f}",
                verdict(ok),
            ]
        )
    lines.append(
        markdown_table(
            ["domain", "documents", "slot MAP", "nDCG@10", "KB per document", f"at most {TARGET_DELTA} below"], rows
        )
    )
    ratio = latency["compact"]["median_s"] / latency["exact"]["median_s"]
    first = curve[0]
    per_doc = first["bytes"] / first["documents"]
    lines += [
        "",
        f"- Search latency on SciFact (5,183 abstracts, {len(latency['exact']['times_s'])} `val` claims, the two "
        f"indexes in alternation, top 100 reranked): median {latency['exact']['median_s'] * 1e3:.0f} ms exact, "
        f"{latency['compact']['median_s'] * 1e3:.0f} ms compact; ratio {ratio:.2f} (target at most "
        f"{TARGET_LATENCY_RATIO}): **{verdict(ratio <= TARGET_LATENCY_RATIO)}**.",
        f"- The first {first['documents']:,} SciFact abstracts: {per_doc / 1024:.1f} KB per document "
        f"(target at most {TARGET_BYTES // 1024} KB): **{verdict(per_doc <= TARGET_BYTES)}**; of it the codec "
        f"(centroids and codebooks, paid once per index) is {first['codec_bytes'] / 1024 ** 2:.1f} MB.",
        "",
        "### Cost as the corpus grows (compact index, SciFact abstracts)",
        "",
    ]
    rows = []
    for point in curve:
        build = point["build_s"] + point["encoder_s_projected"]
        mark = "" if point["encoder_ran"] else " *"
        rows.append(
            [
                f"{point['documents']:,}",
                f"{point['bytes'] / point['documents'] / 1024:.1f}",
                f"{point['bytes'] / 1024 ** 2:.0f}",
                f"{point['documents'] / build:.1f}{mark}",
                f"{point['median_s'] * 1e3:.0f} / {point['p90_s'] * 1e3:.0f}",
                f"{point['first_stage_median_s'] * 1e3:.0f}",
            ]
        )
    lines.append(
        markdown_table(
            ["documents", "KB per document", "MB on disk", "build docs/s", "search ms, median / p90", "first stage ms"],
            rows,
        )
    )
    last = curve[-1]
    lines += [
        "",
        "\\* encodings reused from the exact SciFact index (the larger corpus repeats SciFact with distinct ids); "
        f"build time adds the encoder time the {first['documents']:,} build measured per token. ",
    ]
    decade = [p for p in curve if 0.9 <= p["documents"] * 10 / last["documents"] <= 1.1]
    if decade:
        low = decade[0]
        growth = {key: last[key] / low[key] for key in ("median_s", "first_stage_median_s")}
        lines.append(
            f"- Growth over the decade {low['documents']:,} → {last['documents']:,}: search median "
            f"×{growth['median_s']:.2f}, first stage ×{growth['first_stage_median_s']:.2f}, bytes per document "
            f"×{(last['bytes'] / last['documents']) / (low['bytes'] / low['documents']):.2f}."
        )
    memory = 4 * 384 * (last["documents"] + last["slots"]) / last["documents"] * 1e6 / 1024**3
    rerank = last["median_s"] - last["first_stage_median_s"]
    build_rate = last["documents"] / (last["build_s"] + last["encoder_s_projected"])
    driver = last["build_s"] / last["documents"]  # seconds a document of compressing, writing and BM25
    approx = last["approximate"]
    exact_slope, exact_at_0 = fit_line([(p["documents"], p["approximate"]["exact_median_s"]) for p in curve])
    # The approximate stage = what it reads of every document (a line through the rows) + its pool, a fixed
    # cost, taken at the largest size (at the smaller ones the pool and sample cover most of the corpus).
    linear_slope, linear_at_0 = fit_line([(p["documents"], p["approximate"]["every_document_median_s"]) for p in curve])
    pool_cost = approx["approximate_median_s"] - approx["every_document_median_s"]
    pooled_slope, pooled_at_0 = linear_slope, linear_at_0 + pool_cost
    crossing = (pooled_at_0 - exact_at_0) / (exact_slope - pooled_slope) if exact_slope > pooled_slope else None
    lines += [
        "",
        "Approximate first stage (`FirstStage.approximate_from`, on from "
        f"{approx['approximate_from']:,} documents): the best-sentence cosine only for a pool of the "
        f"{approx['pool']:,} documents best by BM25 and document cosine, and for {approx['sample']:,} evenly "
        "spaced documents that stand in for the corpus in its z-score; BM25 and the document cosine stay exact. "
        "Forced on at every size, over the same claims, in alternation with the exact first stage:",
        "",
        markdown_table(
            ["documents", "recall of the exact top 100 (lowest)", "first stage ms, exact", "approximate"],
            [
                [
                    f"{p['documents']:,}",
                    f"{p['approximate']['recall_at_100']:.3f} ({p['approximate']['recall_at_100_min']:.2f})",
                    f"{p['approximate']['exact_median_s'] * 1e3:.0f}",
                    f"{p['approximate']['approximate_median_s'] * 1e3:.0f}",
                ]
                for p in curve
            ],
        ),
        "",
        "**Projection to a million documents (a projection, not a measurement: least-squares lines through the "
        "rows above; for the approximate stage, a line through the time of its BM25 and document cosine, which "
        f"read every document ({linear_slope * 1e8:.1f} ms per 100,000 documents), plus its pool's cost at "
        f"{last['documents']:,} documents, {pool_cost * 1e3:.0f} ms, as fixed):** "
        f"{last['bytes'] / last['documents'] * 1e6 / 1024 ** 3:.0f} GB on disk. The exact first "
        f"stage would take {exact_at_0 + exact_slope * 1e6:.2f} s a query ({exact_slope * 1e8:.1f} ms per 100,000 "
        "documents, "
        f"every sentence read) and hold {memory:.0f} GB of float32 document and sentence matrices in memory; "
        f"the approximate one {pooled_at_0 + pooled_slope * 1e6:.2f} s and "
        f"{4 * 384 * 1e6 / 1024 ** 3:.1f} GB (the document matrix). "
        + (f"The lines cross at {crossing:,.0f} documents. " if crossing else "The lines do not cross. ")
        + f"The rerank stays at {rerank * 1e3:.0f} ms (it reads only "
        f"the 100 candidates). Building at this machine's rate ({build_rate:.1f} documents a second on 2 cores) "
        f"takes {1e6 / build_rate / 3600:.0f} hours; on a Ray cluster the encoder (the bulk of it) divides over the "
        "workers, while the driver's share (compressing and writing, "
        f"{driver * 1e3:.1f} ms a document here) stays serial: {driver * 1e6 / 3600:.1f} hours at least.",
        "",
        machine_load_line(result["probe_before"], result["probe_after"]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
