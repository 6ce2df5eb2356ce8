"""The facade's methods over a corpus index: `search`, and the retrieve-then-rerank steps evaluation and
calibration drive one query at a time. A mixin of `SpicyLentil` (as transformers' `GenerationMixin` is of its
models): it reads the facade's scorer, encoder, slotter and k.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import check_count, check_query
from ..network.encoder import Encoding
from ..results import RelevanceField

if TYPE_CHECKING:
    from ..corpus.first_stage import Candidates, FirstStage
    from ..corpus.index import CorpusIndex


class CorpusSearch:
    """Search and rerank over a corpus indexed once (`spicy-lentil index`); see `SpicyLentil`."""

    def search(
        self,
        index: "CorpusIndex | str | Path",
        query: str,
        top_k: int = 10,
        candidates: int = 100,
        batch_size: int = 64,
        first_stage: "FirstStage | None" = None,
        pathways_per_query: int | None = None,
    ) -> list[dict[str, Any]]:
        """Searches a corpus indexed once: first stage (BM25 + dense fusion), then rerank with relevance fields.

        Args:
            index: a `CorpusIndex` or its folder (built with this model's encoder and slotter); a folder
                stays open for the next search until its index is rebuilt.
            query: the query text.
            top_k: results returned.
            candidates: first-stage documents reranked.
            batch_size: most documents per model batch.
            first_stage: fusion weights; default equal weights.
            pathways_per_query: this call's k; None = the `pathways_per_query` attribute.

        Returns:
            `[{"corpus_id", "document_id", "score", "text", "title", "first_stage", "field"}]`, best first:
            "corpus_id" is the document's position in the index (as `rank`'s is in its input), "document_id"
            its "_id", "field" its `RelevanceField`, the slots with spans into "text".

        Raises:
            StaleIndexError: the index was built with another encoder or slotter setting.
        """
        from ..corpus.first_stage import FirstStage
        from ..corpus.index import CorpusIndex
        from ..corpus.rerank import rerank

        check_query(query)
        for name, value in (("top_k", top_k), ("candidates", candidates), ("batch_size", batch_size)):
            check_count(value, name)
        k = self._call_k(pathways_per_query)
        if not isinstance(index, CorpusIndex):
            index = self._indexes.open(index, self.encoder, self.slotter)
        query_encoding, routing = self.scorer.encode_and_route(query, k)
        reranked = rerank(
            self.scorer, index, query, query_encoding, k, first_stage or FirstStage(), max(candidates, top_k),
            batch_size=batch_size, routing=routing,
        )
        fusion = reranked.candidates.signals["fusion"]
        results = []
        for r in sorted(range(len(reranked.positions)), key=lambda r: -reranked.scored[r].score)[:top_k]:
            position = reranked.positions[r]
            doc = index.document(position)
            field = reranked.field(index, r, self.model.pathway_names)
            results.append(
                {
                    "corpus_id": position,
                    "document_id": doc["_id"],
                    "score": field.score,
                    "text": doc["text"],
                    "title": doc["title"],
                    "first_stage": float(fusion[position]),
                    "field": field,
                }
            )
        return results

    def retrieve_and_rerank(
        self,
        query_encoding: Encoding,
        index: "CorpusIndex",
        query: str,
        candidates: int,
        first_stage: "FirstStage | None" = None,
        also=(),
        pathways_per_query: int | None = None,
    ) -> tuple["Candidates", list[int], list[RelevanceField]]:
        """`corpus.rerank.rerank` with this model: what `search` runs, for callers that need every candidate.

        Args:
            query_encoding: from `encode_query`.
            index: the corpus index.
            query: the query text.
            candidates: first-stage documents reranked.
            first_stage: fusion weights; default equal weights.
            also: index positions scored too where the first stage missed them (say, labelled answers).
            pathways_per_query: this call's k; None = the `pathways_per_query` attribute.

        Returns:
            The first stage's output, the positions scored (the candidates in first-stage order, then the
            missed ones) and their relevance fields.
        """
        from ..corpus.first_stage import FirstStage
        from ..corpus.rerank import rerank

        reranked = rerank(
            self.scorer, index, query, query_encoding, self._call_k(pathways_per_query),
            first_stage or FirstStage(), candidates, also,
        )
        names = self.model.pathway_names
        return reranked.candidates, reranked.positions, [
            reranked.field(index, r, names) for r in range(len(reranked.positions))
        ]

    def encode_query(self, query: str, pathways_per_query: int | None = None) -> Encoding:
        """The query's encoding (sentence and token embeddings), as `rerank_indexed` takes it; its routing
        (with the given k, None = the attribute) is counted in `routing_statistics`."""
        check_query(query)
        return self.scorer.encode_and_route(query, self._call_k(pathways_per_query))[0]

    def rerank_indexed(
        self,
        query_encoding: Encoding,
        index: "CorpusIndex",
        docs,
        prior=None,
        batch_size: int = 64,
        pathways_per_query: int | None = None,
    ) -> list[RelevanceField]:
        """Fields of indexed documents from their stored encodings: no encoder runs over documents.

        Args:
            query_encoding: from `encode_query`.
            index: the corpus index.
            docs: index positions of the documents.
            prior: (len(docs), prior features) first-stage features (`first_stage.Candidates.prior`), or None.
            pathways_per_query: this call's k; None = the `pathways_per_query` attribute.
        """
        from ..corpus.index import IndexedDocuments

        positions = [int(i) for i in docs]
        scored = self.scorer.score(
            query_encoding,
            IndexedDocuments(index, positions),
            batch_size,
            self._call_k(pathways_per_query),
            prior=prior,
        )
        return [result.field(index.slots(i), self.model.pathway_names) for result, i in zip(scored, positions)]
