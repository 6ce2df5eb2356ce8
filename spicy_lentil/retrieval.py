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
            "bm25": index.bm25_scores(query),
            "dense_doc": index.doc_embeddings() @ query_embedding,
            "dense_slot": index.best_slot_cosine(query_embedding),
        }
        raw["fusion"] = sum(self.weights[name] * zscore(raw[name]) for name in SIGNALS)
        return raw

    def prior(self, signals: dict[str, np.ndarray], docs: np.ndarray) -> np.ndarray:
        """(len(docs), PRIOR_FEATURES) z-scored first-stage features of the given documents."""
        columns = [zscore(signals[name])[docs] for name in SIGNALS]
        columns.append(signals["fusion"][docs] / max(sum(abs(w) for w in self.weights.values()), 1e-9))
        return np.stack(columns, axis=1).astype(np.float32)

    def candidates(self, signals: dict[str, np.ndarray], top_n: int) -> np.ndarray:
        """Indices of the `top_n` best documents by fusion, best first."""
        fusion = signals["fusion"]
        top_n = min(top_n, len(fusion))
        part = np.argpartition(-fusion, top_n - 1)[:top_n]
        return part[np.argsort(-fusion[part], kind="stable")]


def zscore(scores: np.ndarray) -> np.ndarray:
    std = float(scores.std())
    return (scores - float(scores.mean())) / (std if std > 1e-12 else 1.0)
