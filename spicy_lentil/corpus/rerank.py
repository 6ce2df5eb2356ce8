"""Retrieve, rerank, then score the documents the first stage missed: the one loop behind `search`,
evaluation and the first-stage trust's fit.

Reranking reads each candidate's stored encodings (no encoder runs over documents) and its first-stage
features; a document asked for by position but outside the candidates (a labelled answer the first stage
did not find) is scored alone, without first-stage features, as a bare document is.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from ..network.encoder import Encoding
from ..network.scoring import Scorer
from ..results import RelevanceField, ScoredDocument
from .first_stage import Candidates, FirstStage
from .index import CorpusIndex, IndexedDocuments


class Reranked(NamedTuple):
    """One query's reranked documents."""

    candidates: Candidates  # the first stage's output: positions best first, signals and prior features
    positions: list[int]  # index positions scored: the candidates in first-stage order, then the missed ones
    scored: list[ScoredDocument]  # one per position

    def field(self, index: CorpusIndex, row: int, pathway_names: list[str]) -> RelevanceField:
        """The relevance field of `positions[row]`, its slots with spans into the document's text."""
        return self.scored[row].field(index.slots(self.positions[row]), pathway_names)


def rerank(
    scorer: Scorer,
    index: CorpusIndex,
    query: str,
    query_encoding: Encoding,
    k: int,
    first_stage: FirstStage,
    candidates: int,
    also: Sequence[int] = (),
    batch_size: int = 64,
    routing=None,
) -> Reranked:
    """The first stage's top `candidates` reranked, and the documents at positions `also` it missed.

    Args:
        scorer: the model's scorer.
        index: a corpus index built with the scorer's encoder.
        query: the query text (BM25 reads it).
        query_encoding: the query's encoding.
        k: pathways the query is routed to.
        first_stage: the fusion that picks candidates.
        candidates: how many first-stage documents are reranked.
        also: index positions scored too where the first stage missed them.
        batch_size: most documents per model batch.
        routing: the query's routing when the caller has it (`Scorer.encode_and_route`); None runs the gate.
    """
    found = first_stage.retrieve(index, query, query_encoding.embedding.numpy(), candidates)
    positions = [int(p) for p in found.docs]
    scored = scorer.score(query_encoding, IndexedDocuments(index, positions), batch_size, k, routing, found.prior)
    taken = set(positions)
    missed = [int(p) for p in dict.fromkeys(also) if int(p) not in taken]
    if missed:
        scored += scorer.score(query_encoding, IndexedDocuments(index, missed), batch_size, k, routing)
    return Reranked(found, positions + missed, scored)
