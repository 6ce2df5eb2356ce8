"""A Haystack ranker component (`pip install spicy-lentil[haystack]`): rerank, and optionally prune, the
documents a retriever returns; each document's `score` becomes its relevance, its kept sentences go to `meta`."""

from __future__ import annotations

from dataclasses import replace

from haystack import Document, component

from . import Judge


@component
class SpicyLentilRanker:
    """Ranks documents by relevance field; with `threshold`, prunes each to its relevant sentences.

    Args:
        judge: a `spicy_lentil.integrations.Judge`; default: the bundled model, every document, no pruning.
    """

    def __init__(self, judge: Judge | None = None) -> None:
        self.judge = judge if judge is not None else Judge()

    @component.output_types(documents=list[Document])
    def run(self, query: str, documents: list[Document], top_k: int | None = None) -> dict:
        """The documents best first, at most `top_k` (None: the judge's `top_n`)."""
        judged = self.judge(query, [d.content or "" for d in documents], top_k)
        return {
            "documents": [
                replace(
                    documents[j.index],
                    content=j.text,
                    score=j.score,
                    meta={**documents[j.index].meta, "sentences": j.sentences},
                )
                for j in judged
            ]
        }
