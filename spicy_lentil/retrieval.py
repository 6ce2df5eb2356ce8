"""First-stage retrieval over a corpus index: BM25 fused with dense cosine over documents and slots.

Each signal is z-scored over the corpus before the weighted sum, so no signal wins by scale alone
(the usual score-fusion recipe; rank fusion loses the margins that z-scores keep). The z-scores
of each candidate are also handed to the reranker as its first-stage prior.
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

    def signals(self, index: CorpusIndex, query: str, query_embedding: np.ndarray) -> dict[str, np.ndarray]:
        """Raw (docs,) scores of every signal, and `fusion`, for one query."""
        raw = {
            "bm25": bm25_scores(index.bm25(), query, len(index)),
            "dense_doc": index.doc_embeddings() @ query_embedding,
            "dense_slot": best_slot_cosine(index, query_embedding),
        }
        raw["fusion"] = sum(self.weights[name] * zscore(raw[name]) for name in SIGNALS)
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
        """Indices of the `top_n` best documents by fusion, best first."""
        fusion = signals["fusion"]
        top_n = min(top_n, len(fusion))
        part = np.argpartition(-fusion, top_n - 1)[:top_n]
        return part[np.argsort(-fusion[part], kind="stable")]


def fusion_gap(prior: np.ndarray) -> np.ndarray:
    """(n,) how far each candidate's fusion (the prior's last column) stands below the best of them, 0 where
    a row has no prior (NaN): what `SpicyLentilModel.first_stage_trust` weighs."""
    known = ~np.isnan(prior).any(axis=1)
    fusion = prior[:, -1].astype(np.float64)
    best = fusion[known].max() if known.any() else 0.0
    return np.where(known, best - fusion, 0.0).astype(np.float32)


def zscore(scores: np.ndarray) -> np.ndarray:
    std = float(scores.std())
    return (scores - float(scores.mean())) / (std if std > 1e-12 else 1.0)


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


def best_slot_cosine(index: CorpusIndex, query_embedding: np.ndarray) -> np.ndarray:
    """(docs,) the highest cosine between the query and any slot of each document; -1 for empty documents."""
    scores = []
    for slot_embeddings, doc_slots in index.shard_slots():
        sims = slot_embeddings @ query_embedding  # (slots,)
        counts = np.diff(doc_slots)
        best = np.full(len(counts), -1.0, dtype=np.float32)
        nonempty = counts > 0
        if nonempty.any():
            best[nonempty] = np.maximum.reduceat(sims, doc_slots[:-1][nonempty])
        scores.append(best)
    return np.concatenate(scores)
