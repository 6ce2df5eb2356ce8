"""A LlamaIndex node postprocessor (`pip install spicy-lentil[llama-index]`): rerank, and optionally prune, the
retrieved nodes; each node's score becomes its document score and its kept `sentences` go into metadata."""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import Field
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from . import Judge


class SpicyLentilPostprocessor(BaseNodePostprocessor):
    """Reranks nodes by relevance field; with the judge's `threshold`, prunes each to its relevant sentences."""

    judge: Any = Field(default_factory=Judge, description="a spicy_lentil.integrations.Judge")

    @classmethod
    def class_name(cls) -> str:
        return "SpicyLentilPostprocessor"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("SpicyLentilPostprocessor needs the query (a QueryBundle)")
        judged = self.judge(
            query_bundle.query_str, [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        )
        kept = []
        for j in judged:
            node = nodes[j.index].node
            if isinstance(node, TextNode):
                node = node.model_copy(update={"text": j.text, "metadata": {**node.metadata, "sentences": j.sentences}})
            kept.append(NodeWithScore(node=node, score=j.score))
        return kept
