"""Spicy Lentil as a component of the RAG frameworks: LangChain (`integrations.langchain`), LlamaIndex
(`integrations.llama_index`) and Haystack (`integrations.haystack`), each behind its own extra.

Every component does the same through `Judge`: score the retrieved texts for the query with the public
API, keep the best `top_n`, and with a `threshold` prune each to its sentences scoring at least that
(a document left with none is dropped). A component takes the judge's settings itself, as its framework's
users pass them (`top_n=3, threshold=0.2`), or a ready `judge`. A document whose metadata holds its
"sentences" is scored by them, as a pre-split document is everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...documents import as_document
from ...errors import check_count, check_threshold
from ..engine import SpicyLentil

SENTENCES_KEY = "sentences"  # metadata key: a document's pre-split sentences in, its kept sentences out


@dataclass
class Judgement:
    """One retrieved text as a component passes it on."""

    index: int  # position among the texts it was given
    score: float  # document relevance in [0, 1]
    text: str  # the text, pruned to its kept sentences when a threshold is set
    # the kept sentences (all of them without a threshold): text, score, and start/end into the document as
    # given, not into the pruned `text`
    sentences: list[dict]


class Judge:
    """Ranks (and optionally prunes) texts for a query; what the framework components share.

    Args:
        lentil: the model; None loads the bundled one.
        top_n: most texts passed on, best first; None passes all.
        threshold: when set, each text is pruned to its sentences scoring at least this, and texts left
            empty are dropped.
        pathways_per_query: the gate's k for these calls; None uses the model's.
    """

    def __init__(
        self,
        lentil: SpicyLentil | None = None,
        top_n: int | None = None,
        threshold: float | None = None,
        pathways_per_query: int | None = None,
    ) -> None:
        self.lentil = lentil if lentil is not None else SpicyLentil.from_pretrained()
        self.top_n = check_count(top_n, "top_n", allow_none=True)
        self.threshold = check_threshold(threshold)
        self.pathways_per_query = check_count(pathways_per_query, "pathways_per_query", allow_none=True)

    def __call__(self, query: str, texts: list[str | list[str]], top_n: int | None = None) -> list[Judgement]:
        """The judged texts (each a string, or its sentences), best first: at most `top_n` (None: the judge's own)."""
        top_n = check_count(top_n, "top_n", allow_none=True) or self.top_n
        if not texts:
            return []
        k = self.pathways_per_query
        if self.threshold is None:
            fields = self.lentil.fields(query, texts, show_progress_bar=False, pathways_per_query=k)
            judged = [
                Judgement(i, f.score, as_document(texts[i], f"texts[{i}]").text, [s.to_dict() for s in f.slots])
                for i, f in enumerate(fields)
            ]
        else:
            pruned = self.lentil.prune(query, texts, threshold=self.threshold, pathways_per_query=k)
            judged = [
                Judgement(i, p.score, p.text, [s.to_dict() for s in p.kept]) for i, p in enumerate(pruned) if p.kept
            ]
        judged.sort(key=lambda j: -j.score)
        return judged[:top_n]


def framework_document(text: str | None, metadata: dict) -> str | list[str]:
    """What a framework's document gives the judge: the sentences in its metadata when it carries them (a
    list of strings, or the sentence dicts a component passed on), so it is scored as pre-split as on every
    other path; else its text."""
    sentences = metadata.get(SENTENCES_KEY)
    if sentences is None:
        return text or ""
    if isinstance(sentences, list) and all(isinstance(s, dict) and isinstance(s.get("text"), str) for s in sentences):
        return [s["text"] for s in sentences]
    return sentences  # strings, or what the engine refuses with a TypeError naming it


def component_judge(
    judge: Any = None,
    lentil: SpicyLentil | None = None,
    top_n: int | None = None,
    threshold: float | None = None,
    pathways_per_query: int | None = None,
) -> Judge:
    """The `Judge` a component works with: the one it was given, or one made of its settings.

    Raises:
        TypeError: `judge` is not a `Judge`, or a setting has the wrong type.
        ValueError: both a judge and settings were given (which would win is a guess), or a setting is out of range.
    """
    settings = {"lentil": lentil, "top_n": top_n, "threshold": threshold, "pathways_per_query": pathways_per_query}
    if judge is None:
        return Judge(**settings)
    if not isinstance(judge, Judge):
        raise TypeError(f"judge must be a spicy_lentil.frontends.integrations.Judge, got {type(judge).__name__}")
    given = [name for name, value in settings.items() if value is not None]
    if given:
        raise ValueError(f"give either a judge or its settings ({', '.join(given)}), not both")
    return judge
