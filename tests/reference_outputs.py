"""The shipped model's outputs on a small corpus, through the public API only, as plain JSON numbers.

`tests/test_reference_outputs.py` recomputes them and compares with the file this writes, so a
refactor that changes any score fails. A deliberate change of the shipped model regenerates it:
`python -m tests.reference_outputs --write`.
"""

import argparse
import json
import tempfile
from pathlib import Path

from spicy_lentil import SpicyLentil
from spicy_lentil.corpus.builder import build_index

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "demo_corpus.jsonl"
QUERIES = REPO / "data" / "demo_queries.jsonl"
REFERENCE = Path(__file__).resolve().parent / "data" / "reference_outputs.json"
DOCUMENTS = 12  # the corpus's first rows: enough for every pathway's routing, quick to index
QUERY_COUNT = 4
FIELD_DOCUMENTS = 4  # documents whose whole fields (slots and attention) are kept per query and k


def _field(field) -> dict:
    return {
        "score": field.score,
        "slots": [s.score for s in field.slots],
        "gate": field.gate,
        "active": field.active,
        "attention": field.pathway_attention,
    }


def compute() -> dict:
    """The reference outputs: fields, rankings, compressions and searches for a few queries."""
    lentil = SpicyLentil.from_pretrained()
    documents = [json.loads(line) for line in CORPUS.read_text().splitlines()[:DOCUMENTS]]
    queries = [json.loads(line)["text"] for line in QUERIES.read_text().splitlines()[:QUERY_COUNT]]
    out: dict = {"queries": []}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        corpus.write_text("".join(json.dumps(d) + "\n" for d in documents))
        index = build_index(corpus, Path(tmp) / "index", lentil.encoder, lentil.slotter, show_progress_bar=False)
        for query in queries:
            entry = {"query": query}
            for k in (None, 2, 9):
                tag = "default" if k is None else f"k{k}"
                entry[f"fields_{tag}"] = [
                    _field(f) for f in lentil.fields(query, documents[:FIELD_DOCUMENTS], pathways_per_query=k)
                ]
                entry[f"search_{tag}"] = [
                    {
                        "document_id": hit["document_id"],
                        "score": hit["score"],
                        "first_stage": hit["first_stage"],
                        "slots": [s.score for s in hit["field"].slots],
                    }
                    for hit in lentil.search(index, query, top_k=5, candidates=10, pathways_per_query=k)
                ]
            entry["field"] = _field(lentil.field(query, documents[0]))
            entry["rank"] = [
                {"corpus_id": r["corpus_id"], "score": r["score"]} for r in lentil.rank(query, documents, top_k=5)
            ]
            compressed = lentil.compress(query, documents, budget_tokens=128)
            entry["compress"] = {
                "text": compressed.text,
                "kept_tokens": compressed.kept_tokens,
                "total_tokens": compressed.total_tokens,
            }
            out["queries"].append(entry)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {REFERENCE.relative_to(REPO)}")
    args = parser.parse_args()
    outputs = compute()
    if args.write:
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        REFERENCE.write_text(json.dumps(outputs, indent=1) + "\n")
    else:
        print(json.dumps(outputs)[:2000])


if __name__ == "__main__":
    main()
