"""A LangChain document compressor (`pip install spicy-lentil[langchain]`): rerank, and optionally prune, the
documents a retriever returns; each passes on with `relevance_score` and its kept `sentences` in metadata."""

from __future__ import annotations

from typing import Any, Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field

from . import Judge


class SpicyLentilCompressor(BaseDocumentCompressor):
    """Reranks documents by relevance field; with `threshold`, prunes each to its relevant sentences.

    Args:
        judge: a `spicy_lentil.integrations.Judge` (model, top_n, threshold); default: the bundled model,
            every document, no pruning.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    judge: Any = Field(default_factory=Judge)

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """The documents best first, as many as the judge's `top_n`, each with `relevance_score` and `sentences`
        (character spans into its passed-on `page_content`) in its metadata."""
        judged = self.judge(query, [d.page_content for d in documents])
        return [
            Document(
                page_content=j.text,
                id=documents[j.index].id,
                metadata={**documents[j.index].metadata, "relevance_score": j.score, "sentences": j.sentences},
            )
            for j in judged
        ]
