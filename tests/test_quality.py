"""The shipped model against BM25 on a fixed slice of SciFact `val` (never trained on)."""

import json
from pathlib import Path

import numpy as np
import pytest

from spicy_lentil.corpus.builder import build_index
from spicy_lentil.corpus.first_stage import bm25_scores, bm25_tokenize
from spicy_lentil.training.data import load_data

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
        scores = bm25_scores(retriever, val.queries[query_id], len(corpus))
        keep.update(int(i) for i in np.argsort(-scores)[:POOL])
        keep.update(i for i, d in enumerate(corpus) if d["_id"] in val.qrels[query_id])
    folder = tmp_path_factory.mktemp("quality")
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for i in sorted(keep):
            handle.write(json.dumps(corpus[i]) + "\n")
    index = build_index(
        folder / "corpus.jsonl", folder / "index", lentil.encoder, lentil.slotter, show_progress_bar=False
    )
    return val, query_ids, index


def test_shipped_model_ranks_cited_abstracts_first_at_least_as_often_as_bm25(lentil, slice_index):
    val, query_ids, index = slice_index
    model_hits = bm25_hits = 0
    for query_id in query_ids:
        query, relevant = val.queries[query_id], val.qrels[query_id]
        top = lentil.search(index, query, top_k=1, candidates=30)[0]
        model_hits += top["document_id"] in relevant
        bm25_hits += index.doc_ids[int(np.argmax(bm25_scores(index.bm25(), query, len(index))))] in relevant
    # At least BM25, not above it: the multi-domain default ranks SciFact abstracts below the fused first
    # stage it reranks (BENCHMARKS.md, generalization); its gain is at the sentence level, tested below.
    assert model_hits >= bm25_hits, f"model P@1 {model_hits}/{len(query_ids)}, BM25 {bm25_hits}/{len(query_ids)}"


def test_shipped_model_ranks_rationale_sentences_first_more_often_than_cosine_and_bm25(lentil, slice_index):
    from spicy_lentil.corpus.first_stage import bm25_slot_scores
    from spicy_lentil.network.encoder import Encoder
    from spicy_lentil.training.evaluation import slot_labels

    val, query_ids, index = slice_index
    plain = Encoder()  # the bundled MiniLM, untuned
    hits = {"model": 0, "cosine": 0, "bm25": 0}
    pairs = [(q, d) for (q, d) in slot_labels(val, index) if q in set(query_ids)]
    for query_id, doc_id in pairs:
        labels = slot_labels(val, index)[(query_id, doc_id)]
        query, position = val.queries[query_id], index.position[doc_id]
        field = lentil.rerank_indexed(lentil.encode_query(query), index, [position])[0]
        texts = [s.text for s in field.slots]
        q, *sentences = plain.encode([query, *texts])
        for name, scores in (
            ("model", [s.score for s in field.slots]),
            ("bm25", bm25_slot_scores(query, texts)),
            ("cosine", [float(v.embedding @ q.embedding) for v in sentences]),
        ):
            hits[name] += labels[max(range(len(scores)), key=scores.__getitem__)]
    assert len(pairs) >= 30
    assert hits["model"] > max(hits["cosine"], hits["bm25"]), hits


EVERYDAY = Path(__file__).resolve().parents[1] / "data" / "everyday.jsonl"


def test_shipped_model_finds_the_answering_sentence_on_everyday_text(lentil):
    from spicy_lentil.training.evaluation import answer_case_metrics, read_answer_cases

    cases = read_answer_cases(EVERYDAY)
    fields = {}

    def field(query, sentences):
        key = (query, tuple(sentences))
        if key not in fields:
            fields[key] = lentil.field(query, " ".join(sentences))
            assert len(fields[key].slots) == len(sentences)
        return fields[key]

    metrics = answer_case_metrics(
        cases, lambda q, s: [x.score for x in field(q, s).slots], lambda q, s: field(q, s).score
    )
    # A regression guard a little under the measured level (BENCHMARKS.md, calibration transfer: 76 of 108
    # first, every asked paragraph above its unrelated one), not the 90% that issue 31 asks for.
    assert metrics["cases"] == 108
    assert metrics["answer_first"] >= 72 / 108, metrics
    assert metrics["above_unrelated"] >= 104 / 108, metrics
