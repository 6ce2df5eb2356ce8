"""Overhead: `SpicyLentil.fields` on 200 SciFact abstracts against sentence-transformers encoding the same slots.

Requirement: "`fields` on 200 abstracts of ../shared/data/scifact/corpus.jsonl against encoding the
same slots with sentence-transformers alone, in one run: ratio at most 1.15."

- Baseline: `lentil.encoder.model.encode(slot_texts, batch_size=64)`: the plain SentenceTransformer,
  default output (sentence embeddings), on the slot texts of the 200 abstracts as `lentil.slotter`
  cuts them (slotting is done beforehand and not timed for the baseline).
- Spicy Lentil: `lentil.encoder.clear_cache(); lentil.fields(query, documents)`: the full pipeline
  (slotting, encoding query, slots and titles, collation, gate, pathways, null point, heads), with
  the encoder cache emptied before every run so that it really encodes.
- Runs alternate baseline, Spicy Lentil, baseline, ... after a small warm-up; medians are compared.

During the timed Spicy Lentil runs, thin timing wrappers around `lentil.slotter.split`,
`lentil.encoder.encode`, the SentenceTransformer network's `forward`, `collate` and
`lentil.model.forward` record where the time goes (they add microseconds to a run of seconds).

Run from the repo root: `.venv/bin/python -m benchmarks.overhead`.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import threading
import time
from collections import defaultdict
from contextlib import contextmanager

from benchmarks.common import (
    contention_probe,
    contention_text,
    log,
    machine_load_line,
    markdown_table,
    read_jsonl,
    start_timing,
    timing_arguments,
    verdict,
)
from benchmarks.render import publish

SECTION = "overhead"
THREADS = 2
THRESHOLD = 1.15
NUM_DOCS = 200
ENCODE_BATCH = 64  # the baseline's batch size, and `Encoder.encode`'s default
PIECES = {  # the breakdown's rows: the label of each piece of a `fields` run
    "slotting": "slotting (`slotter.split`, {documents} documents)",
    "encode:slots": "encoding slots (`encoder.encode`, {slots} texts)",
    "encode:titles": "encoding titles (`encoder.encode`, {titles} texts)",
    "encode:query": "encoding the query (1 text)",
    "scoring": "scoring: collate and model forward (gate, pathways, null point, heads), batches side by side",
    "rest": "rest (gate on the query, building `RelevanceField`s, parsing)",
}


@contextmanager
def instrumented(lentil, titles: set[str], query: str):
    """Wraps the pipeline's pieces with timers for the duration; yields the dict of seconds per piece."""
    import spicy_lentil.network.scoring as scoring

    seconds: dict[str, float] = defaultdict(float)
    texts: dict[str, int] = defaultdict(int)
    st = lentil.encoder.model
    originals = {
        "split": lentil.slotter.split,
        "encode": lentil.encoder.encode,
        "network": st.forward,
        "collate": scoring.collate,
        "forward": lentil.model.forward,
        "scoring": lentil.scorer.score,
    }

    lock = threading.Lock()  # encoder batches run side by side: their timings arrive from several threads

    def timed(piece, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with lock:
                    seconds[piece] += time.perf_counter() - start
                    texts[f"calls:{piece}"] += 1

        return wrapper

    def encode(texts_, *args, **kwargs):
        titles_only = texts_ and all(t in titles for t in texts_)
        kind = "query" if list(texts_) == [query] else "titles" if titles_only else "slots"
        texts[kind] += len(texts_)
        start = time.perf_counter()
        try:
            return originals["encode"](texts_, *args, **kwargs)
        finally:
            seconds[f"encode:{kind}"] += time.perf_counter() - start

    lentil.slotter.split = timed("slotting", originals["split"])
    lentil.encoder.encode = encode
    st.forward = timed("network", originals["network"])
    scoring.collate = timed("collate", originals["collate"])
    lentil.model.forward = timed("model", originals["forward"])
    lentil.scorer.score = timed("scoring", originals["scoring"])
    try:
        yield seconds, texts
    finally:
        # Back to the class methods.
        del lentil.slotter.split, lentil.encoder.encode, st.forward, lentil.model.forward, lentil.scorer.score
        scoring.collate = originals["collate"]


def time_runs(lentil, query: str, documents: list[dict], slot_texts: list[str], titles: set[str], repeats: int) -> dict:
    """`repeats` timed runs of each side after a small warm-up; the pieces and text counts of every `fields` run."""
    def baseline():
        lentil.encoder.model.encode(slot_texts, batch_size=ENCODE_BATCH, show_progress_bar=False)

    # Warm-up on a little of each side (the full pipeline on 4 documents), so first-call costs stay out.
    lentil.encoder.model.encode(slot_texts[:ENCODE_BATCH], batch_size=ENCODE_BATCH, show_progress_bar=False)
    lentil.encoder.clear_cache()
    lentil.fields(query, documents[:4])

    times, pieces, counts = {"baseline": [], "spicy": []}, [], {}
    for repeat in range(repeats):
        # A B, B A, A B, ...: the order flips each repeat so that a linear drift hits both sides alike.
        for side in (("baseline", "spicy") if repeat % 2 == 0 else ("spicy", "baseline")):
            gc.collect()
            if side == "baseline":
                start = time.perf_counter()
                baseline()
                times["baseline"].append(time.perf_counter() - start)
                continue
            with instrumented(lentil, titles, query) as (seconds, texts):
                start = time.perf_counter()
                lentil.encoder.clear_cache()  # so that `fields` really encodes
                fields = lentil.fields(query, documents)
                times["spicy"].append(time.perf_counter() - start)
            pieces.append(dict(seconds))
            counts = dict(texts)
            assert len(fields) == len(documents)
            assert sum(len(f.slots) for f in fields) == len(slot_texts), "fields scored other slots than the baseline"
        log(f"repeat {repeat + 1}/{repeats}: sentence-transformers {times['baseline'][-1]:.2f} s, "
            f"fields {times['spicy'][-1]:.2f} s, ratio {times['spicy'][-1] / times['baseline'][-1]:.3f}")
    lentil.encoder.clear_cache()
    return {"times": times, "pieces": pieces, "counts": counts}


def summarise(runs: dict) -> dict:
    """The paired and median ratios, and the pieces of the median `fields` run against the median baseline."""
    times, counts = runs["times"], runs["counts"]
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
                   "network_calls": counts.get("calls:network", 0), "network_s": med["network"]},
    }


def render(result: dict) -> str:
    med, texts, inside = result["median"], result["encoded_texts"], result["inside"]
    runs = [[i + 1, f"{r['baseline_s']:.2f}", f"{r['fields_s']:.2f}", f"{r['ratio']:.3f}"]
            for i, r in enumerate(result["runs"])]
    runs.append(["**median**", f"**{med['baseline_s']:.2f}**", f"**{med['fields_s']:.2f}**", f"**{med['ratio']:.3f}**"])
    labels = {key: label.format(documents=result["documents"], **texts) for key, label in PIECES.items()}
    same_slots = {"encode:slots": " (against encoding the same slots)"}
    pieces = [[labels[p["piece"]], f"{p['seconds']:.3f}", f"{100 * p['share']:.1f}%",
               f"{100 * p['vs_baseline']:+.1f}%{same_slots.get(p['piece'], '')}"] for p in result["pieces"]]
    pieces.append(["**total**", f"**{result['total']['seconds']:.3f}**", "100%",
                   f"**{100 * result['total']['vs_baseline']:+.1f}%**"])
    paired = ", ".join(f"{r['ratio']:.3f}" for r in result["runs"])
    return f"""## Overhead: `fields` on {result['documents']} abstracts against sentence-transformers alone

Requirement: `fields` on 200 SciFact abstracts at most **{THRESHOLD}×** the time of encoding the same slots with \
sentence-transformers alone, in one run.

**Result: ratio {med['ratio']:.3f} → {verdict(med['ratio'] <= THRESHOLD)}** (median `fields` \
{med['fields_s']:.2f} s / median sentence-transformers {med['baseline_s']:.2f} s; per-run paired ratios {paired}).

{machine_load_line(result['probe_before'], result['probe_after'])}
- Inputs: the first {result['documents']} documents of `corpus.jsonl` (dicts with title and text), {result['slots']} \
slots as `lentil.slotter` cuts them, {result['titles']} titles; query: the first SciFact claim \
(“{result['query']}”); bundled default model, CPU, `torch.set_num_threads({result['threads']})`.
- Baseline: `lentil.encoder.model.encode(slot_texts, batch_size={ENCODE_BATCH})` (the plain SentenceTransformer, \
default output; slotting done beforehand).
- Spicy Lentil: `lentil.encoder.clear_cache(); lentil.fields(query, documents)` (default `batch_size=32` documents): \
slotting, encoding of query, slots and titles (sentence and token embeddings), collation and the model.
- Protocol: a small warm-up of each side, then {result['repeats']} runs of each, alternating baseline, `fields` | \
`fields`, baseline | … (the order flips every repeat); ratio = median / median. The breakdown comes from timing \
wrappers around `slotter.split`, `encoder.encode`, the scoring of encoded documents, `collate`, `model.forward` and \
the encoder network's `forward` during the same `fields` runs.

{markdown_table(["run", "sentence-transformers s", "`fields` s", "ratio"], runs)}

### Where a `fields` run spends its time

The last column puts each piece against the median baseline run: how many percent of overhead it adds (for the slot \
encoding, the difference from the baseline's encoding of the same slots).

{markdown_table(["piece of the median `fields` run", "s", "share", "vs the median baseline"], pieces)}

Inside the scoring, collate took {inside['collate_s']:.3f} s and the model's forward passes {inside['model_s']:.3f} s, \
each summed over the batch workers. `encoder.encode` took {inside['encode_s']:.2f} s of wall time for \
{sum(texts.values())} texts; in it the network's {inside['network_calls']} forward passes (batches of up to \
{ENCODE_BATCH} texts sorted by token count, {result['workers']} at a time side by side on one thread each: \
`spicy_lentil.runtime`) add up to {inside['network_s']:.2f} s over the workers, which is why they can exceed the wall \
time. The baseline encodes the same slots in {med['baseline_s']:.2f} s, one batch at a time on {result['threads']} \
intra-op threads (sentence-transformers' own way).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side (interleaved)")
    parser.add_argument("--docs", type=int, default=NUM_DOCS)
    timing_arguments(parser, THREADS)
    args = parser.parse_args()
    probe_before = start_timing(args.threads)
    from spicy_lentil.frontends.engine import SpicyLentil
    from spicy_lentil.runtime import batch_workers

    started = time.perf_counter()
    lentil = SpicyLentil.from_pretrained()
    documents = read_jsonl(args.data / "corpus.jsonl", args.docs)
    query = read_jsonl(args.data / "queries.jsonl", 1)[0]["text"]
    slot_texts = [s.text for doc in documents for s in lentil.slotter.split(doc["text"])[0]]
    titles = {doc["title"] for doc in documents if doc.get("title")}
    log(f"{len(documents)} abstracts, {len(slot_texts)} slots, {len(titles)} titles; query: {query!r}")
    result = summarise(time_runs(lentil, query, documents, slot_texts, titles, args.repeats))
    log(f"median ratio {result['median']['ratio']:.3f} (limit {THRESHOLD}); "
        f"done in {time.perf_counter() - started:.0f} s")
    probe_after = contention_probe()
    log(f"contention probe at the end: {contention_text(probe_after)}")
    if not args.no_write:
        publish(SECTION, __spec__.name, {
            "documents": len(documents), "slots": len(slot_texts), "titles": len(titles), "query": query,
            "threads": args.threads, "repeats": args.repeats, "workers": batch_workers(),
            "probe_before": probe_before, "probe_after": probe_after, **result})


if __name__ == "__main__":
    main()
