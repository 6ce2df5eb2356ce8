"""A LangChain document compressor (`pip install spicy-lentil[langchain]`): rerank, and optionally prune, the
documents a retriever returns; each passes on with `relevance_score` and its kept `sentences` in metadata."""

from __future__ import annotations

from typing import Any, Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, model_validator

from . import SENTENCES_KEY, component_judge, framework_document


class SpicyLentilCompressor(BaseDocumentCompressor):
    """Reranks documents by relevance field; with `threshold`, prunes each to its relevant sentences.

    Args:
        top_n: most documents passed on, best first; None passes all.
        threshold: when set, each document is pruned to its sentences scoring at least this (documents left
            empty are dropped).
        pathways_per_query: the gate's k; None uses the model's.
        lentil: the model; None loads the bundled one.
        judge: a ready `spicy_lentil.frontends.integrations.Judge`, instead of the settings above.
    """

    # An unknown argument (`top_k=` for `top_n=`) is refused, not silently dropped.
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    top_n: Any = None
    threshold: Any = None
    pathways_per_query: Any = None
    lentil: Any = Field(default=None, exclude=True)
    judge: Any = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _settle_judge(self) -> "SpicyLentilCompressor":
        self.judge = component_judge(self.judge, self.lentil, self.top_n, self.threshold, self.pathways_per_query)
        return self

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """The documents best first, as many as the judge's `top_n`, each with `relevance_score` and its kept
        `sentences` in its metadata. A document whose metadata holds `sentences` is scored by them."""
        judged = self.judge(query, [framework_document(d.page_content, d.metadata) for d in documents])
        return [
            Document(
                page_content=j.text,
                id=documents[j.index].id,
                metadata={**documents[j.index].metadata, "relevance_score": j.score, SENTENCES_KEY: j.sentences},
            )
            for j in judged
        ]
