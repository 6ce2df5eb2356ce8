"""Sparsity: model time with k = 4 pathways per query against k = 9, on the same 10,000 slots.

    .venv/bin/python -m benchmarks.sparsity

Per batch k = 4 and k = 9 run back to back, the order flipped from batch to batch (ABBA): interleaving at the batch
level (about a second apart) cancels the drift of a shared machine far better than alternating whole passes would.
The section (`templates/sparsity.md`) states the protocol.
"""
from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

from benchmarks.common import fill, log, machine_load_line, markdown_table, read_jsonl, verdict
from benchmarks.harness import Times, timing_parser, timing_run
from benchmarks.render import publish

SECTION = "sparsity"
THREADS = 2
THRESHOLD = 0.6
NUM_SLOTS = 10_000
BATCH_DOCS = 32  # documents per model batch: SpicyLentil.fields' default


def select_slots(lentil, corpus: Path, num_slots: int) -> list[tuple[str | None, list[str]]]:
    """(title, [slot text, ...]) of documents in corpus order, split into slots, until `num_slots` (the last
    document cut to fit)."""
    from spicy_lentil.documents import as_document

    selected, total = [], 0
    for i, row in enumerate(read_jsonl(corpus)):
        _, title, text, _ = as_document(row, f"corpus[{i}]")
        texts = [s.text for s in lentil.slotter.split(text)[0]][: num_slots - total]
        if texts:
            selected.append((title, texts))
            total += len(texts)
        if total == num_slots:
            return selected
    raise SystemExit(f"{corpus} has only {total} slots, {num_slots} wanted")


def for_query(lentil, batches, query_encoding, filler):
    """The same batches for another query: only the query fields differ (made by `collate` itself, from the query
    encodings alone), the document tensors are shared."""
    from spicy_lentil.network.batching import collate

    out, made = [], {}
    for batch in batches:
        n = batch.batch_size
        if n not in made:
            made[n] = collate([query_encoding] * n, [[filler]] * n, [None] * n, lentil.special_ids)
        query_fields = [f.name for f in dataclasses.fields(batch) if f.name.startswith("query")]
        out.append(dataclasses.replace(batch, **{f: getattr(made[n], f) for f in query_fields}))
    return out


def time_query(model, batches, repeats: int, n_pathways: int) -> tuple[float, float]:
    """Per batch, k=4 and k=9 back to back (ABBA across batches), `repeats` times, garbage collection paused.

    Returns the seconds at k=4 and at k=9, each the sum over batches of the per-batch median.
    """
    import torch

    ks, times = (4, n_pathways), Times()
    gc.collect()
    gc.disable()
    try:
        with torch.inference_mode():
            for repeat in range(repeats):
                for i, batch in enumerate(batches):
                    for k in (ks if (i + repeat) % 2 == 0 else ks[::-1]):
                        with times((k, i)):
                            model(batch, k=k)
    finally:
        gc.enable()
    totals = [sum(statistics.median(times[(k, i)]) for i in range(len(batches))) for k in ks]
    return totals[0], totals[1]


def prepare(lentil, data: Path) -> SimpleNamespace:
    """Every claim, the slots, their encodings, the model batches of BATCH_DOCS documents collated for claim 0 exactly
    as `SpicyLentil.fields` does, and the figures the section gives of them."""
    from spicy_lentil.network.batching import collate

    selected = select_slots(lentil, data / "corpus.jsonl", NUM_SLOTS)
    queries = read_jsonl(data / "queries.jsonl")
    titles = list(dict.fromkeys(title for title, _ in selected if title))
    log(f"encoding {sum(len(texts) for _, texts in selected)} slots, {len(titles)} titles and {len(queries)} claims")
    slots = lentil.encoder.encode([t for _, texts in selected for t in texts])
    title_of = dict(zip(titles, lentil.encoder.encode(titles)))
    query_encodings = lentil.encoder.encode([q["text"] for q in queries])
    lentil.encoder.clear_cache()
    start, per_doc, offset = time.perf_counter(), [], 0
    for _, texts in selected:
        per_doc.append(slots[offset: offset + len(texts)])
        offset += len(texts)
    doc_titles = [title_of.get(title) if title else None for title, _ in selected]
    # Collated with claim 0, the first claim timed; `for_query` swaps in the other claims' query fields.
    batches = [collate([query_encodings[0]] * len(per_doc[s: s + BATCH_DOCS]), per_doc[s: s + BATCH_DOCS],
                       doc_titles[s: s + BATCH_DOCS], lentil.special_ids) for s in range(0, len(per_doc), BATCH_DOCS)]
    log(f"{offset} slots from {len(selected)} documents, {len(batches)} batches "
        f"(collated in {time.perf_counter() - start:.0f} s)")
    tokens = [e.tokens.shape[0] for e in slots]
    figures = {"documents": len(selected), "slots": offset, "mean_tokens": statistics.mean(tokens),
               "batches": len(batches), "token_rows": sum(b.tokens.shape[0] for b in batches), "tokens": sum(tokens)}
    return SimpleNamespace(queries=queries, query_encodings=query_encodings, slot_encodings=slots,
                           batches=batches, figures=figures)


def routing(model, query_encodings: list) -> list[list[str]]:
    """The k=4 selection of every claim, highest weight first (the gate reads the query embedding only)."""
    import torch

    with torch.inference_mode():
        selected = model.gate(torch.stack([e.embedding for e in query_encodings]), 4).selected_pathways
    return [[model.pathway_names[j] for j in row] for row in selected.tolist()]


def time_claims(model, lentil, inputs, chosen: list[int], selections, repeats: int) -> list[dict]:
    """Times the chosen claims in turn: each claim's row."""
    import torch

    n_pathways = len(model.pathway_names)
    with torch.inference_mode():  # warm-up: one batch at each k, twice
        for k in (4, n_pathways) * 2:
            model(inputs.batches[0], k=k)
    rows = []
    for number, index in enumerate(chosen):
        query = inputs.queries[index]
        batches = for_query(lentil, inputs.batches, inputs.query_encodings[index], inputs.slot_encodings[0])
        k4, k9 = time_query(model, batches, repeats, n_pathways)
        rows.append({"id": query["_id"], "text": query["text"], "active": selections[index], "k4": k4, "k9": k9,
                     "ratio": k4 / k9})
        log(f"claim {number + 1}/{len(chosen)} [{query['_id']}]: k=4 {k4:.1f} s, k=9 {k9:.1f} s, ratio {k4 / k9:.3f}; "
            f"active {', '.join(selections[index])}")
    return rows


def render(result: dict) -> str:
    claims, ratios = result["claims"], [r["ratio"] for r in result["claims"]]

    def claim(r: dict) -> str:
        return f"`{r['id']}` {r['text'] if len(r['text']) <= 55 else r['text'][:54] + '…'}"
    rows = [[claim(r), ", ".join(r["active"]), f"{r['k4']:.1f}", f"{r['k9']:.1f}", f"**{r['ratio']:.3f}**"]
            for r in claims]
    return fill(
        SECTION, **result, threshold=THRESHOLD, claims_timed=len(claims), plural="s" if len(claims) > 1 else "",
        ok=verdict(result["median_ratio"] <= THRESHOLD), low=min(ratios), high=max(ratios), batch_docs=BATCH_DOCS,
        machine_load=machine_load_line(result["probe_before"], result["probe_after"]),
        k9_median=statistics.median(r["k9"] for r in claims),
        table=markdown_table(["claim", "active pathways at k=4 (highest weight first)", "k=4 s", "k=9 s", "ratio"],
                             rows),
        routing=markdown_table(["pathway", "routed to"], [[name, f"{share:.0%}"]
                                                          for name, share in result["routed_to"].items()]))


def main() -> None:
    parser = timing_parser(__doc__, THREADS)
    parser.add_argument("--queries", type=int, default=24, help="SciFact claims timed, evenly spaced in queries.jsonl")
    parser.add_argument("--repeats", type=int, default=1, help="k=4/k=9 repeats per batch (median per batch)")
    args = parser.parse_args()
    with timing_run(args.threads) as load:
        from spicy_lentil.frontends.engine import SpicyLentil

        model = (lentil := SpicyLentil.from_pretrained()).model.eval()
        assert model.config.fusion == "null_point", f"bundled model fuses with {model.config.fusion}, not null point"
        inputs = prepare(lentil, args.data)
        selections = routing(model, inputs.query_encodings)
        step = max(1, len(inputs.queries) // args.queries)
        claims = time_claims(model, lentil, inputs, [i * step for i in range(args.queries)], selections, args.repeats)
        median_ratio = statistics.median(r["ratio"] for r in claims)
        log(f"median ratio over {len(claims)} claims: {median_ratio:.3f} (limit {THRESHOLD})")
    routed_to = {n: sum(n in s for s in selections) / len(selections) for n in model.pathway_names}
    publish(SECTION, __spec__.name, {**inputs.figures, "threads": args.threads, "repeats": args.repeats,
                                     "queries_listed": args.queries, **load, "claims": claims,
                                     "median_ratio": median_ratio, "all_claims": len(selections),
                                     "routed_to": dict(sorted(routed_to.items(), key=lambda kv: -kv[1]))},
            write=not args.no_write)


if __name__ == "__main__":
    main()
