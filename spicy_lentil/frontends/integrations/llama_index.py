"""A LlamaIndex node postprocessor (`pip install spicy-lentil[llama-index]`): rerank, and optionally prune, the
retrieved nodes; each node's score becomes its document score and its kept `sentences` go into metadata, kept
out of what the LLM and the embedding model are shown."""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import ConfigDict, Field, model_validator
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from . import SENTENCES_KEY, component_judge, framework_document


class SpicyLentilPostprocessor(BaseNodePostprocessor):
    """Reranks nodes by relevance field; with `threshold`, prunes each to its relevant sentences.

    Args:
        top_n: most nodes passed on, best first; None passes all.
        threshold: when set, each node is pruned to its sentences scoring at least this (nodes left empty
            are dropped).
        pathways_per_query: the gate's k; None uses the model's.
        lentil: the model; None loads the bundled one.
        judge: a ready `spicy_lentil.frontends.integrations.Judge`, instead of the settings above.
    """

    # An unknown argument (`top_k=` for `top_n=`) is refused, not silently dropped.
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    top_n: Any = Field(default=None, description="most nodes passed on; None passes all")
    threshold: Any = Field(default=None, description="prune each node to its sentences scoring at least this")
    pathways_per_query: Any = Field(default=None, description="the gate's k; None uses the model's")
    lentil: Any = Field(default=None, exclude=True, description="a spicy_lentil.SpicyLentil; None: the bundled one")
    judge: Any = Field(default=None, exclude=True, description="a spicy_lentil.frontends.integrations.Judge")

    @model_validator(mode="after")
    def _settle_judge(self) -> "SpicyLentilPostprocessor":
        self.judge = component_judge(self.judge, self.lentil, self.top_n, self.threshold, self.pathways_per_query)
        return self

    @classmethod
    def class_name(cls) -> str:
        return "SpicyLentilPostprocessor"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("SpicyLentilPostprocessor needs the query (a QueryBundle)")
        judged = self.judge(
            query_bundle.query_str,
            [framework_document(n.node.get_content(metadata_mode=MetadataMode.NONE), n.node.metadata) for n in nodes],
        )
        kept = []
        for j in judged:
            node = nodes[j.index].node
            if isinstance(node, TextNode):
                # The spans are for the caller: shown to the LLM, they would outgrow the pruned text they describe.
                node = node.model_copy(
                    update={
                        "text": j.text,
                        "metadata": {**node.metadata, SENTENCES_KEY: j.sentences},
                        "excluded_llm_metadata_keys": _with(node.excluded_llm_metadata_keys, SENTENCES_KEY),
                        "excluded_embed_metadata_keys": _with(node.excluded_embed_metadata_keys, SENTENCES_KEY),
                    }
                )
            kept.append(NodeWithScore(node=node, score=j.score))
        return kept


def _with(keys: list[str], key: str) -> list[str]:
    return keys if key in keys else [*keys, key]
