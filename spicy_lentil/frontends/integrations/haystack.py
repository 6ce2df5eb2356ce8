"""A Haystack ranker component (`pip install spicy-lentil[haystack]`): rerank, and optionally prune, the
documents a retriever returns; each document's `score` becomes its relevance, its kept sentences go to `meta`."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict

from ...errors import check_count, check_threshold
from . import SENTENCES_KEY, Judge, framework_document


@component
class SpicyLentilRanker:
    """Ranks documents by relevance field; with `threshold`, prunes each to its relevant sentences.

    As Haystack's rankers do, it takes only serialisable settings (a pipeline holding it can be saved with
    `Pipeline.dumps`) and loads its model in `warm_up`, which a pipeline calls before its first run.

    Args:
        model: the model folder; None: the bundled model.
        top_k: most documents passed on, best first; None passes all.
        threshold: when set, each document is pruned to its sentences scoring at least this (documents left
            empty are dropped).
        pathways_per_query: the gate's k; None uses the model's.
    """

    def __init__(
        self,
        model: str | None = None,
        top_k: int | None = None,
        threshold: float | None = None,
        pathways_per_query: int | None = None,
    ) -> None:
        if model is not None and not isinstance(model, str):
            raise TypeError(f"model must be a model folder's path (a string) or None, got {type(model).__name__}")
        self.model = model
        self.top_k = check_count(top_k, "top_k", allow_none=True)
        self.threshold = check_threshold(threshold)
        self.pathways_per_query = check_count(pathways_per_query, "pathways_per_query", allow_none=True)
        self.judge: Judge | None = None

    def warm_up(self) -> None:
        """Loads the model, once."""
        if self.judge is None:
            from ..engine import SpicyLentil

            self.judge = Judge(
                SpicyLentil.from_pretrained(self.model), self.top_k, self.threshold, self.pathways_per_query
            )

    def to_dict(self) -> dict[str, Any]:
        """The component as Haystack serialises it: its init settings."""
        return default_to_dict(
            self,
            model=self.model,
            top_k=self.top_k,
            threshold=self.threshold,
            pathways_per_query=self.pathways_per_query,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SpicyLentilRanker":
        """The component `to_dict` describes."""
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(self, query: str, documents: list[Document], top_k: int | None = None) -> dict:
        """The documents best first, at most `top_k` (None: the component's own); warms up first if not yet.
        A document whose `meta` holds `sentences` is scored by them."""
        self.warm_up()
        judged = self.judge(query, [framework_document(d.content, d.meta) for d in documents], top_k)
        return {
            "documents": [
                replace(
                    documents[j.index],
                    content=j.text,
                    score=j.score,
                    meta={**documents[j.index].meta, SENTENCES_KEY: j.sentences},
                )
                for j in judged
            ]
        }
