"""Sparsity: model time with k = 4 pathways per query against k = 9, on the same 10,000 slots.

    .venv/bin/python -m benchmarks.sparsity

Per batch k = 4 and k = 9 run back to back, the order flipped from batch to batch (ABBA): interleaving at the batch
level (about a second apart) cancels the drift of a shared machine far better than alternating whole passes would.
The section (`templates/sparsity.md`) states the protocol. The slots are encoded once and cached in
`cache/benchmarks/` (only the first run encodes them).
"""
from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

from benchmarks.common import CACHE_DIR, fill, log, machine_load_line, markdown_table, read_jsonl, verdict
from benchmarks.harness import Times, timed_parts, timing_parser, timing_run
from benchmarks.render import publish

SECTION = "sparsity"
THREADS = 2
THRESHOLD = 0.6
NUM_SLOTS = 10_000
BATCH_DOCS = 32  # documents per model batch: SpicyLentil.fields' default
REST = "rest: dispatch, masking"  # the forward's time outside the timed modules (the losses are not in it)
OTHER_PARTS = ["null point", "pooling + heads", REST]  # the timed parts besides pathways


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


def cached_encodings(lentil, groups: dict[str, list[str]], cache_path: Path) -> dict[str, list]:
    """`lentil.encoder.encode` of each group of texts, from a cache file when its key matches."""
    import torch

    from spicy_lentil.network.encoder import Encoding

    digest = hashlib.sha256()
    for name, texts in groups.items():
        digest.update(("\x1d" + name + "\x1e" + "\x1e".join(texts)).encode("utf-8"))
    key = json.dumps({"encoder": lentil.encoder.name, "texts_sha256": digest.hexdigest(),
                      "counts": {name: len(texts) for name, texts in groups.items()}})
    if cache_path.is_file():
        stored = torch.load(cache_path, weights_only=True)
        if stored["key"] == key:
            log(f"encodings loaded from {cache_path}")
            return {name: [Encoding(*fields) for fields in stored[name]] for name in groups}
        log(f"{cache_path} does not match these texts or this encoder: re-encoding")
    start, result = time.perf_counter(), {}
    for name, texts in groups.items():
        log(f"encoding {len(texts)} {name} (once; cached afterwards)")
        result[name] = []
        for i in range(0, len(texts), 1000):
            result[name] += lentil.encoder.encode(texts[i: i + 1000])
            log(f"  {len(result[name])}/{len(texts)} {name} encoded")
        lentil.encoder.clear_cache()
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_path.with_suffix(".tmp")
    torch.save({"key": key, **{name: [(e.embedding, e.tokens, e.token_ids) for e in encodings]
                               for name, encodings in result.items()}}, tmp)
    tmp.replace(cache_path)
    log(f"encoded in {time.perf_counter() - start:.0f} s, cached to {cache_path}")
    return result


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


def time_query(model, batches, repeats: int, n_pathways: int):
    """Per batch, k=4 and k=9 back to back (ABBA across batches), `repeats` times, garbage collection paused.

    Returns (seconds at k=4, seconds at k=9, breakdown per k), each the sum over batches of the per-batch median;
    the breakdown (`timed_parts` of the pathways, the null point, pooling and heads) adds up all timed calls divided by
    `repeats`.
    """
    import torch

    ks, times, current = (4, n_pathways), Times(), {"k": None}
    modules = {**dict(model.pathways.items()), "null point": model.fusion, "pooling + heads": model.pooling,
               "pooling + heads#slot": model.slot_head, "pooling + heads#doc": model.doc_head}
    gc.collect()
    gc.disable()
    try:
        with torch.inference_mode(), timed_parts({name: (module, "forward") for name, module in modules.items()},
                                                 lambda part, _: (current["k"], part.split("#")[0])) as (seconds, _):
            for repeat in range(repeats):
                for i, batch in enumerate(batches):
                    for k in (ks if (i + repeat) % 2 == 0 else ks[::-1]):
                        current["k"] = k
                        with times((k, i)):
                            model(batch, k=k)
    finally:
        gc.enable()
    totals = {k: sum(statistics.median(times[(k, i)]) for i in range(len(batches))) for k in ks}
    parts = {}
    for k in ks:
        parts[k] = {name: s / repeats for (at, name), s in seconds.items() if at == k}
        parts[k][REST] = sum(sum(times[(k, i)]) for i in range(len(batches))) / repeats - sum(parts[k].values())
    return totals[4], totals[n_pathways], parts


def prepare(lentil, data: Path) -> SimpleNamespace:
    """Every claim, the slots, their encodings, the model batches of BATCH_DOCS documents collated for claim 0 exactly
    as `SpicyLentil.fields` does, and the figures the section gives of them."""
    from spicy_lentil.network.batching import collate

    selected = select_slots(lentil, data / "corpus.jsonl", NUM_SLOTS)
    queries = read_jsonl(data / "queries.jsonl")
    titles = list(dict.fromkeys(title for title, _ in selected if title))
    encodings = cached_encodings(lentil, {"slot": [t for _, texts in selected for t in texts], "title": titles},
                                 CACHE_DIR / "benchmarks" / f"scifact-slots-{NUM_SLOTS}.pt")
    query_encodings = cached_encodings(lentil, {"query": [q["text"] for q in queries]},
                                       CACHE_DIR / "benchmarks" / "scifact-queries.pt")["query"]
    start, per_doc, offset = time.perf_counter(), [], 0
    for _, texts in selected:
        per_doc.append(encodings["slot"][offset: offset + len(texts)])
        offset += len(texts)
    title_of = dict(zip(titles, encodings["title"]))
    doc_titles = [title_of.get(title) if title else None for title, _ in selected]
    # Collated with claim 0, the first claim timed; `for_query` swaps in the other claims' query fields.
    batches = [collate([query_encodings[0]] * len(per_doc[s: s + BATCH_DOCS]), per_doc[s: s + BATCH_DOCS],
                       doc_titles[s: s + BATCH_DOCS], lentil.special_ids) for s in range(0, len(per_doc), BATCH_DOCS)]
    log(f"{offset} slots from {len(selected)} documents, {len(batches)} batches "
        f"(collated in {time.perf_counter() - start:.0f} s)")
    tokens = [e.tokens.shape[0] for e in encodings["slot"]]
    figures = {"documents": len(selected), "slots": offset, "mean_tokens": statistics.mean(tokens),
               "batches": len(batches), "token_rows": sum(b.tokens.shape[0] for b in batches), "tokens": sum(tokens)}
    return SimpleNamespace(queries=queries, query_encodings=query_encodings, slot_encodings=encodings["slot"],
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

    names, n_pathways = model.pathway_names, len(model.pathway_names)
    with torch.inference_mode():  # warm-up: one batch at each k, twice
        for k in (4, n_pathways) * 2:
            model(inputs.batches[0], k=k)
    per_query = []
    for number, index in enumerate(chosen):
        query = inputs.queries[index]
        batches = for_query(lentil, inputs.batches, inputs.query_encodings[index], inputs.slot_encodings[0])
        k4, k9, parts = time_query(model, batches, repeats, n_pathways)
        core = {k: sum(v for name, v in parts[k].items() if name in names or name == "null point") for k in parts}
        per_query.append({"id": query["_id"], "text": query["text"], "active": selections[index], "k4": k4, "k9": k9,
                          "ratio": k4 / k9, "parts": parts, "core_ratio": core[4] / core[n_pathways]})
        log(f"claim {number + 1}/{len(chosen)} [{query['_id']}]: k=4 {k4:.1f} s, k=9 {k9:.1f} s, ratio {k4 / k9:.3f}; "
            f"pathways + null point only {per_query[-1]['core_ratio']:.3f}; active {', '.join(selections[index])}")
    return per_query


def summarise(per_query: list[dict], selections, names: list[str]) -> dict:
    """The verdict's ratios and where the time goes (medians over the timed claims)."""
    n_pathways = len(names)
    # Per pathway at k=9: all of them ran on the full batches.
    pathway_s = {n: statistics.median(r["parts"][n_pathways][n] for r in per_query) for n in names}
    pathway_total = sum(pathway_s.values())
    return {
        "all_claims": len(selections),
        "claims": [{key: r[key] for key in ("id", "text", "active", "k4", "k9", "ratio", "core_ratio")}
                   for r in per_query],
        "median_ratio": statistics.median(r["ratio"] for r in per_query),
        "pathways": [{"pathway": n, "seconds": pathway_s[n], "share": pathway_s[n] / pathway_total,
                      "routed_to": sum(n in s for s in selections) / len(selections)}
                     for n in sorted(names, key=lambda n: -pathway_s[n])],
        "other_parts": [{"part": key, **{f"k{k}": statistics.median(r["parts"][k].get(key, 0.0) for r in per_query)
                                          for k in (4, n_pathways)}} for key in OTHER_PARTS],
        "k9_median": statistics.median(r["k9"] for r in per_query),
    }


def render(result: dict) -> str:
    claims, ratios = result["claims"], [r["ratio"] for r in result["claims"]]

    def claim(r: dict) -> str:
        return f"`{r['id']}` {r['text'] if len(r['text']) <= 55 else r['text'][:54] + '…'}"
    rows = [[claim(r), ", ".join(r["active"]), f"{r['k4']:.1f}", f"{r['k9']:.1f}", f"**{r['ratio']:.3f}**",
             f"{r['core_ratio']:.3f}"] for r in claims]
    costs = [[r["pathway"], f"{r['seconds']:.2f}", f"{100 * r['share']:.0f}%", f"{r['routed_to']:.0%}"]
             for r in result["pathways"]]
    costs += [[f"*{r['part']}*", f"k=4: {r['k4']:.2f} · k=9: {r['k9']:.2f}", "", ""] for r in result["other_parts"]]
    return fill(
        SECTION, **result, threshold=THRESHOLD, claims_timed=len(claims), plural="s" if len(claims) > 1 else "",
        ok=verdict(result["median_ratio"] <= THRESHOLD), low=min(ratios), high=max(ratios), batch_docs=BATCH_DOCS,
        machine_load=machine_load_line(result["probe_before"], result["probe_after"]),
        table=markdown_table(["claim", "active pathways at k=4 (highest weight first)", "k=4 s", "k=9 s", "ratio",
                              "pathways + null point only"], rows),
        costs=markdown_table(["module", "s per 10,000 slots", "share of the nine pathways", "routed to"], costs))


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
        timed = time_claims(model, lentil, inputs, [i * step for i in range(args.queries)], selections, args.repeats)
        summary = summarise(timed, selections, model.pathway_names)
        log(f"median ratio over {len(timed)} claims: {summary['median_ratio']:.3f} (limit {THRESHOLD})")
    publish(SECTION, __spec__.name, {**inputs.figures, "threads": args.threads, "repeats": args.repeats,
                                     "queries_listed": args.queries, **load, **summary},
            write=not args.no_write)


if __name__ == "__main__":
    main()
