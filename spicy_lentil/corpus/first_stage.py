"""First-stage retrieval over a corpus index: BM25 fused with dense cosine over documents and slots.

Each signal is z-scored over the corpus before the weighted sum, so no signal wins by scale alone
(the usual score-fusion recipe; rank fusion loses the margins that z-scores keep). The z-scores
of each candidate are also handed to the reranker as its first-stage prior.

The best-sentence cosine reads every sentence vector of the corpus, several a document: it is what
grows fastest with the corpus (BENCHMARKS.md, "Index cost"). From `approximate_from` documents on it is
computed only for a pool (the documents best by BM25 and document cosine, which are exact and cheap) and
for an evenly spaced sample of the corpus, which stands in for the corpus in its z-score; every other
document cannot be a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .index import CorpusIndex

SIGNALS = ("bm25", "dense_doc", "dense_slot")
PRIOR_FEATURES = len(SIGNALS) + 1  # the z-scored signals and their fusion


@dataclass
class FirstStage:
    """Weighted z-score fusion of BM25, document cosine and best-slot cosine."""

    weights: dict[str, float] = field(default_factory=lambda: {"bm25": 1.0, "dense_doc": 1.0, "dense_slot": 1.0})
    approximate_from: int = 200_000  # corpus size from which the best-slot cosine is computed for a pool only
    pool: int = 2_000  # documents, best by BM25 and document cosine fused, whose best-slot cosine is computed
    sample: int = 1_024  # documents spread over the corpus that stand in for it in the best-slot z-score

    def signals(self, index: CorpusIndex, query: str, query_embedding: np.ndarray) -> dict[str, np.ndarray]:
        """Raw (docs,) scores of every signal, and `fusion`, for one query (NaN where a signal was not
        computed, and then a fusion of -inf: see the module's note on large corpora)."""
        raw = {
            "bm25": bm25_scores(index.bm25(), query, len(index)),
            "dense_doc": index.doc_embeddings() @ query_embedding,
        }
        z = {name: zscore(raw[name]) for name in raw}
        if len(index) < self.approximate_from:
            raw["dense_slot"] = best_slot_cosine(index, query_embedding)
        else:
            partial = self.weights["bm25"] * z["bm25"] + self.weights["dense_doc"] * z["dense_doc"]
            pool = np.argpartition(-partial, min(self.pool, len(index)) - 1)[: self.pool]
            spread = np.linspace(0, len(index) - 1, min(self.sample, len(index))).astype(np.int64)
            known = np.union1d(pool, spread)
            raw["dense_slot"] = np.full(len(index), np.nan, dtype=np.float32)
            raw["dense_slot"][known] = best_slot_cosine(index, query_embedding, known)
        z["dense_slot"] = zscore(raw["dense_slot"])
        fusion = sum(self.weights[name] * z[name] for name in SIGNALS)
        raw["fusion"] = np.where(np.isnan(fusion), -np.inf, fusion)
        return raw

    def prior(self, signals: dict[str, np.ndarray], docs: np.ndarray) -> np.ndarray:
        """(len(docs), PRIOR_FEATURES) z-scored first-stage features of the given documents."""
        columns = [zscore(signals[name])[docs] for name in SIGNALS]
        columns.append(signals["fusion"][docs] / max(sum(abs(w) for w in self.weights.values()), 1e-9))
        return np.stack(columns, axis=1).astype(np.float32)

    def retrieve(self, index: CorpusIndex, query: str, query_embedding: np.ndarray, top_n: int) -> "Candidates":
        """The first stage of a search: the `top_n` documents by fusion, with their priors."""
        signals = self.signals(index, query, query_embedding)
        docs = self.candidates(signals, top_n)
        return Candidates(docs, self.prior(signals, docs), signals)

    def candidates(self, signals: dict[str, np.ndarray], top_n: int) -> np.ndarray:
        """Indices of the `top_n` best documents by fusion, best first (never one left out of the pool)."""
        fusion = signals["fusion"]
        top_n = min(top_n, int(np.isfinite(fusion).sum()))
        if top_n == 0:
            return np.zeros(0, dtype=np.int64)
        part = np.argpartition(-fusion, top_n - 1)[:top_n]
        return part[np.argsort(-fusion[part], kind="stable")]


def zscore(scores: np.ndarray) -> np.ndarray:
    """Scores standardised by their mean and spread (over the known ones: NaN stays NaN)."""
    known = scores[~np.isnan(scores)] if np.isnan(scores).any() else scores
    std = float(known.std()) if len(known) else 0.0
    return (scores - (float(known.mean()) if len(known) else 0.0)) / (std if std > 1e-12 else 1.0)


@dataclass
class Candidates:
    """What the first stage hands the reranker for one query."""

    docs: np.ndarray  # (n,) int64 index positions, best first by fusion
    prior: np.ndarray  # (n, PRIOR_FEATURES) their z-scored first-stage features
    signals: dict[str, np.ndarray]  # every signal's raw (corpus docs,) scores, and "fusion"


def bm25_tokenize(texts: list[str]):
    """The one tokenization BM25 uses for documents and queries: lower-case, English stop words, Snowball stems."""
    import bm25s
    import Stemmer

    return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)


def bm25_scores(retriever, query: str, size: int) -> np.ndarray:
    """(size,) BM25 of every document of a `bm25s.BM25` retriever (of `size` documents) for the query."""
    tokens = bm25_tokenize([query])
    vocab = {v: k for k, v in tokens.vocab.items()}
    words = [vocab[t] for t in tokens.ids[0]]
    if not words:  # only stop words or punctuation: BM25 has nothing to match, the dense signals decide
        return np.zeros(size, dtype=np.float32)
    return np.asarray(retriever.get_scores(words), dtype=np.float32)


def bm25_slot_scores(query: str, slots: list[str]) -> list[float]:
    """BM25 of each sentence of one document, the document's sentences as the collection."""
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25_tokenize(slots), show_progress=False)
    return bm25_scores(retriever, query, len(slots)).tolist()


def best_slot_cosine(
    index: CorpusIndex, query_embedding: np.ndarray, positions: np.ndarray | None = None
) -> np.ndarray:
    """(docs,) the highest cosine between the query and any slot of each document (of the documents at
    `positions` only, when given); -1 for empty documents."""
    shards = index.shard_slots() if positions is None else [index.slot_matrix(positions)]
    scores = []
    for slot_embeddings, doc_slots in shards:
        sims = slot_embeddings @ query_embedding  # (slots,)
        counts = np.diff(doc_slots)
        best = np.full(len(counts), -1.0, dtype=np.float32)
        nonempty = counts > 0
        if nonempty.any():
            best[nonempty] = np.maximum.reduceat(sims, doc_slots[:-1][nonempty])
        scores.append(best)
    return np.concatenate(scores)
