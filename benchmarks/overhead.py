"""Overhead: `SpicyLentil.fields` on 200 SciFact abstracts against sentence-transformers encoding the same slots.

    .venv/bin/python -m benchmarks.overhead

The two sides alternate after a small warm-up (`harness.alternate`) and their medians are compared. The section
(`templates/overhead.md`) states the protocol.
"""

from __future__ import annotations

import statistics

from benchmarks.common import fill, log, machine_load_line, markdown_table, read_jsonl, verdict
from benchmarks.harness import alternate, timing_parser, timing_run
from benchmarks.render import publish

SECTION = "overhead"
THREADS = 2
THRESHOLD = 1.15
NUM_DOCS = 200
ENCODE_BATCH = 64  # the baseline's batch size, and `Encoder.encode`'s default


def time_runs(lentil, query: str, documents: list[dict], slot_texts: list[str], repeats: int) -> dict:
    """`repeats` timed runs of each side after a small warm-up, alternating; each `fields` run encodes afresh."""
    def spicy() -> None:
        lentil.encoder.clear_cache()  # so that `fields` really encodes
        fields = lentil.fields(query, documents)
        assert sum(len(f.slots) for f in fields) == len(slot_texts), "fields scored other slots than the baseline"

    # Warm-up on a little of each side (the full pipeline on 4 documents), so first-call costs stay out.
    lentil.encoder.model.encode(slot_texts[:ENCODE_BATCH], batch_size=ENCODE_BATCH, show_progress_bar=False)
    lentil.encoder.clear_cache()
    lentil.fields(query, documents[:4])
    times = alternate({"baseline": lambda: lentil.encoder.model.encode(slot_texts, batch_size=ENCODE_BATCH,
                                                                        show_progress_bar=False),
                       "spicy": spicy}, repeats, warmup=0)
    lentil.encoder.clear_cache()
    base, fields = statistics.median(times["baseline"]), statistics.median(times["spicy"])
    runs = zip(times["baseline"], times["spicy"])
    return {"runs": [{"baseline_s": b, "fields_s": f, "ratio": f / b} for b, f in runs],
            "median": {"baseline_s": base, "fields_s": fields, "ratio": fields / base}}


def render(result: dict) -> str:
    med = result["median"]
    runs = [[i + 1, f"{r['baseline_s']:.2f}", f"{r['fields_s']:.2f}", f"{r['ratio']:.3f}"]
            for i, r in enumerate(result["runs"])]
    runs.append(["**median**", f"**{med['baseline_s']:.2f}**", f"**{med['fields_s']:.2f}**", f"**{med['ratio']:.3f}**"])
    return fill(
        SECTION, **result, threshold=THRESHOLD, ok=verdict(med["ratio"] <= THRESHOLD), encode_batch=ENCODE_BATCH,
        paired=", ".join(f"{r['ratio']:.3f}" for r in result["runs"]),
        machine_load=machine_load_line(result["probe_before"], result["probe_after"]),
        runs_table=markdown_table(["run", "sentence-transformers s", "`fields` s", "ratio"], runs))


def main() -> None:
    parser = timing_parser(__doc__, THREADS)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side (interleaved)")
    parser.add_argument("--docs", type=int, default=NUM_DOCS)
    args = parser.parse_args()
    with timing_run(args.threads) as load:
        from spicy_lentil.corpus.builder import document_slots
        from spicy_lentil.frontends.engine import SpicyLentil
        from spicy_lentil.runtime import batch_workers

        lentil = SpicyLentil.from_pretrained()
        documents = read_jsonl(args.data / "corpus.jsonl", args.docs)
        query = read_jsonl(args.data / "queries.jsonl", 1)[0]["text"]
        slot_texts = [s.text for doc in documents for s in document_slots(lentil.slotter, doc)[0]]
        titles = {doc["title"] for doc in documents if doc.get("title")}
        log(f"{len(documents)} abstracts, {len(slot_texts)} slots, {len(titles)} titles; query: {query!r}")
        result = time_runs(lentil, query, documents, slot_texts, args.repeats)
        log(f"median ratio {result['median']['ratio']:.3f} (limit {THRESHOLD})")
    publish(SECTION, __spec__.name, {
        "documents": len(documents), "slots": len(slot_texts), "titles": len(titles), "query": query,
        "threads": args.threads, "repeats": args.repeats, "workers": batch_workers(), **load, **result},
        write=not args.no_write)


if __name__ == "__main__":
    main()
