"""The shipped model against BM25 on a fixed slice of SciFact `val` (never trained on)."""

import json
from pathlib import Path

import numpy as np
import pytest

from spicy_lentil.data import load_data
from spicy_lentil.index import CorpusIndex, bm25_tokenize

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
QUERIES = 60  # the first 60 val claims by id
POOL = 5  # BM25's top documents per claim, over the whole corpus, plus the cited ones


@pytest.fixture(scope="module")
def slice_index(lentil, tmp_path_factory):
    import bm25s

    val = load_data(SCIFACT, "val")
    corpus = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    retriever = bm25s.BM25()
    retriever.index(bm25_tokenize([f"{d['title']} {d['text']}" for d in corpus]), show_progress=False)
    query_ids = sorted(val.queries, key=int)[:QUERIES]
    keep = set()
    for query_id in query_ids:
        tokens = bm25_tokenize([val.queries[query_id]])
        vocab = {v: k for k, v in tokens.vocab.items()}
        scores = retriever.get_scores([vocab[t] for t in tokens.ids[0]])
        keep.update(int(i) for i in np.argsort(-scores)[:POOL])
        keep.update(i for i, d in enumerate(corpus) if d["_id"] in val.qrels[query_id])
    folder = tmp_path_factory.mktemp("quality")
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for i in sorted(keep):
            handle.write(json.dumps(corpus[i]) + "\n")
    index = CorpusIndex.build(folder / "corpus.jsonl", folder / "index", lentil.encoder, lentil.slotter, show_progress_bar=False)
    return val, query_ids, index


def test_shipped_model_ranks_cited_abstracts_first_more_often_than_bm25(lentil, slice_index):
    val, query_ids, index = slice_index
    model_hits = bm25_hits = 0
    for query_id in query_ids:
        query, relevant = val.queries[query_id], val.qrels[query_id]
        top = lentil.search(index, query, top_k=1, candidates=30)[0]
        model_hits += top["corpus_id"] in relevant
        bm25_hits += index.doc_ids[int(np.argmax(index.bm25_scores(query)))] in relevant
    assert model_hits > bm25_hits, f"model P@1 {model_hits}/{len(query_ids)}, BM25 {bm25_hits}/{len(query_ids)}"
