"""Overhead: `SpicyLentil.fields` on 200 SciFact abstracts against sentence-transformers encoding the same slots.

    .venv/bin/python -m benchmarks.overhead

The two sides alternate after a small warm-up (`harness.alternate`) and their medians are compared; during the
`fields` runs, thin timing wrappers around the pipeline's pieces (`harness.timed_parts`) record where the time goes
(microseconds on a run of seconds). The section (`templates/overhead.md`) states the protocol.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from benchmarks.common import fill, log, machine_load_line, markdown_table, read_jsonl, verdict
from benchmarks.harness import alternate, timed_parts, timing_parser, timing_run
from benchmarks.render import publish

SECTION = "overhead"
THREADS = 2
THRESHOLD = 1.15
NUM_DOCS = 200
ENCODE_BATCH = 64  # the baseline's batch size, and `Encoder.encode`'s default
PIECES = {  # the breakdown's rows: the label of each piece of a `fields` run
    "slotting": "slotting (`Scorer.split`: the corpus's own sentences where they match, {documents} documents)",
    "encode:slots": "encoding slots (`encoder.encode`, {slots} texts)",
    "encode:titles": "encoding titles (`encoder.encode`, {titles} texts)",
    "encode:query": "encoding the query (1 text)",
    "scoring": "scoring: collate and model forward (gate, pathways, null point, heads), batches side by side",
    "rest": "rest (gate on the query, building `RelevanceField`s, parsing)",
}


def timed_pieces(lentil, titles: set[str], query: str, texts: dict[str, int]):
    """`timed_parts` of the pipeline's pieces, the encoder's calls keyed by what they encode (`encode:query`,
    `encode:titles` or `encode:slots`), whose texts add up in `texts`."""
    import spicy_lentil.network.scoring as scoring

    def key(piece: str, args: tuple) -> str:
        if piece != "encode":
            return piece
        batch = args[0]
        kind = "query" if list(batch) == [query] else "titles" if batch and all(t in titles for t in batch) else "slots"
        texts[kind] += len(batch)
        return f"encode:{kind}"
    return timed_parts({"slotting": (lentil.scorer, "split"), "encode": (lentil.encoder, "encode"),
                        "network": (lentil.encoder.model, "forward"), "collate": (scoring, "collate"),
                        "model": (lentil.model, "forward"), "scoring": (lentil.scorer, "score")}, key)


def time_runs(lentil, query: str, documents: list[dict], slot_texts: list[str], titles: set[str], repeats: int) -> dict:
    """`repeats` timed runs of each side after a small warm-up; the pieces and text counts of every `fields` run."""
    runs = []

    def spicy() -> None:
        texts = defaultdict(int)
        with timed_pieces(lentil, titles, query, texts) as (seconds, calls):
            lentil.encoder.clear_cache()  # so that `fields` really encodes
            runs.append((seconds, texts, calls, lentil.fields(query, documents)))

    # Warm-up on a little of each side (the full pipeline on 4 documents), so first-call costs stay out.
    lentil.encoder.model.encode(slot_texts[:ENCODE_BATCH], batch_size=ENCODE_BATCH, show_progress_bar=False)
    lentil.encoder.clear_cache()
    lentil.fields(query, documents[:4])
    times = alternate({"baseline": lambda: lentil.encoder.model.encode(slot_texts, batch_size=ENCODE_BATCH,
                                                                        show_progress_bar=False),
                       "spicy": spicy}, repeats, warmup=0)
    lentil.encoder.clear_cache()
    for *_, fields in runs:
        assert len(fields) == len(documents)
        assert sum(len(f.slots) for f in fields) == len(slot_texts), "fields scored other slots than the baseline"
    return {"times": times, "pieces": [dict(seconds) for seconds, *_ in runs], "texts": dict(runs[-1][1]),
            "network_calls": runs[-1][2]["network"]}


def summarise(runs: dict) -> dict:
    """The paired and median ratios, and the pieces of the median `fields` run against the median baseline."""
    times, counts = runs["times"], runs["texts"]
    base, spicy = statistics.median(times["baseline"]), statistics.median(times["spicy"])
    # The median `fields` run (the lower middle one for an even count).
    middle = sorted(range(len(times["spicy"])), key=lambda i: times["spicy"][i])[(len(times["spicy"]) - 1) // 2]
    run = times["spicy"][middle]
    med = defaultdict(float, runs["pieces"][middle])
    encode = med["encode:query"] + med["encode:slots"] + med["encode:titles"]
    seconds = {key: med[key] for key in PIECES if key != "rest"}
    seconds["rest"] = run - med["slotting"] - encode - med["scoring"]
    return {
        "runs": [{"baseline_s": b, "fields_s": s, "ratio": s / b} for b, s in zip(times["baseline"], times["spicy"])],
        "median": {"baseline_s": base, "fields_s": spicy, "ratio": spicy / base},
        "encoded_texts": {kind: counts.get(kind, 0) for kind in ("slots", "titles", "query")},
        # For the slot encoding, the difference from the baseline's encoding of the very same slots.
        "pieces": [{"piece": key, "seconds": s, "share": s / run,
                    "vs_baseline": (s - base) / base if key == "encode:slots" else s / base}
                   for key, s in seconds.items()],
        "total": {"seconds": run, "vs_baseline": (run - base) / base},
        "inside": {"collate_s": med["collate"], "model_s": med["model"], "encode_s": encode,
                   "network_calls": runs["network_calls"], "network_s": med["network"]},
    }


def render(result: dict) -> str:
    med, texts = result["median"], result["encoded_texts"]
    runs = [[i + 1, f"{r['baseline_s']:.2f}", f"{r['fields_s']:.2f}", f"{r['ratio']:.3f}"]
            for i, r in enumerate(result["runs"])]
    runs.append(["**median**", f"**{med['baseline_s']:.2f}**", f"**{med['fields_s']:.2f}**", f"**{med['ratio']:.3f}**"])
    same_slots = {"encode:slots": " (against encoding the same slots)"}
    pieces = [[PIECES[p["piece"]].format(documents=result["documents"], **texts), f"{p['seconds']:.3f}",
               f"{100 * p['share']:.1f}%", f"{100 * p['vs_baseline']:+.1f}%{same_slots.get(p['piece'], '')}"]
              for p in result["pieces"]]
    pieces.append(["**total**", f"**{result['total']['seconds']:.3f}**", "100%",
                   f"**{100 * result['total']['vs_baseline']:+.1f}%**"])
    return fill(
        SECTION, **result, threshold=THRESHOLD, ok=verdict(med["ratio"] <= THRESHOLD), encode_batch=ENCODE_BATCH,
        paired=", ".join(f"{r['ratio']:.3f}" for r in result["runs"]), texts=sum(texts.values()),
        machine_load=machine_load_line(result["probe_before"], result["probe_after"]),
        runs_table=markdown_table(["run", "sentence-transformers s", "`fields` s", "ratio"], runs),
        pieces_table=markdown_table(["piece of the median `fields` run", "s", "share", "vs the median baseline"],
                                    pieces))


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
        result = summarise(time_runs(lentil, query, documents, slot_texts, titles, args.repeats))
        log(f"median ratio {result['median']['ratio']:.3f} (limit {THRESHOLD})")
    publish(SECTION, __spec__.name, {
        "documents": len(documents), "slots": len(slot_texts), "titles": len(titles), "query": query,
        "threads": args.threads, "repeats": args.repeats, "workers": batch_workers(), **load, **result},
        write=not args.no_write)


if __name__ == "__main__":
    main()
