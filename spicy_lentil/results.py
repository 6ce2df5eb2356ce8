"""What the public API returns: relevance fields, compressed contexts, pruned documents, and the
selection of slots under a threshold and a token budget that the last two share."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .slots import Slot

LOGIT_LIMIT = 16.0  # float32 sigmoid saturates beyond this; a score's logit is clipped here
# Where a calibrated slot score turns from "more likely not" to "more likely" an answer: what the app marks as
# answering. Selections (`compress`, `prune`, the framework components) take their threshold from the caller.
ANSWER_THRESHOLD = 0.5


@dataclass
class RelevanceField:
    """A document's relevance to one query: per-slot scores, a document score and the routing behind them."""

    score: float  # document relevance in [0, 1]
    slots: list[Slot]  # slots in document order, each with its score in [0, 1]
    gate: dict[str, float]  # routing weight of every pathway; 0.0 for those that did not run
    active: list[str]  # the pathways that ran, highest weight first
    pathway_attention: list[dict[str, float]]  # per slot, the fusion's weight on each pathway
    truncated: bool = False  # the slot cap cut the document
    document_id: str | None = None  # the document's "_id" when it had one

    def to_dict(self) -> dict:
        """JSON-serialisable dict of the field."""
        return {
            "document_id": self.document_id,
            "score": self.score,
            "truncated": self.truncated,
            "active": list(self.active),
            "gate": dict(self.gate),
            "slots": [slot.to_dict() for slot in self.slots],
            "pathway_attention": [dict(a) for a in self.pathway_attention],
        }


@dataclass
class CompressedContext:
    """What `compress` keeps: the most relevant slots within a token budget, in document order."""

    text: str  # kept slots, documents separated by a blank line
    selected: list[tuple[int, Slot]] = field(default_factory=list)  # (document index, slot), in document order
    kept_tokens: int = 0
    total_tokens: int = 0

    @property
    def kept_share(self) -> float:
        return self.kept_tokens / self.total_tokens if self.total_tokens else 0.0

    def to_dict(self) -> dict:
        """JSON-serialisable dict of the context."""
        return {
            "text": self.text,
            "kept_tokens": self.kept_tokens,
            "total_tokens": self.total_tokens,
            "kept_share": self.kept_share,
            "selected": [{"document": i, **slot.to_dict()} for i, slot in self.selected],
        }


@dataclass
class PrunedDocument:
    """One document pruned to its relevant slots (`prune`)."""

    text: str  # the kept slots joined by one space
    kept: list[Slot]  # the kept slots, in document order, spans into the document's text
    score: float  # the document's relevance in [0, 1]
    kept_tokens: int
    total_tokens: int
    document_id: str | None = None

    @property
    def compression_rate(self) -> float:
        """The share of the document's tokens pruned away (0: all kept; 1: none kept)."""
        return 1.0 - self.kept_tokens / self.total_tokens if self.total_tokens else 0.0

    def to_dict(self) -> dict:
        """JSON-serialisable dict of the pruned document."""
        return {
            "document_id": self.document_id,
            "text": self.text,
            "score": self.score,
            "kept": [slot.to_dict() for slot in self.kept],
            "kept_tokens": self.kept_tokens,
            "total_tokens": self.total_tokens,
            "compression_rate": self.compression_rate,
        }


@dataclass
class ScoredDocument:
    """One document's model outputs, made into a `RelevanceField` only for the documents a caller keeps
    (a search returns 10 of the 100 it reranks; building the other fields' slot lists is wasted)."""

    score: float
    slot_scores: torch.Tensor  # (slots,) in [0, 1]; empty for an empty document
    attention: torch.Tensor  # (slots, pathways) the fusion's weight on each pathway
    gate: dict[str, float]
    active: list[str]
    document_id: str | None

    def field(self, split: tuple[list[Slot], bool], pathway_names: list[str]) -> RelevanceField:
        """The field over the document's slots (`split`: its slots and whether the cap cut them)."""
        slots, truncated = split
        return RelevanceField(
            score=self.score,
            slots=[Slot(s.text, s.start, s.end, v) for s, v in zip(slots, self.slot_scores.tolist())],
            gate=self.gate,
            active=self.active,
            pathway_attention=[dict(zip(pathway_names, a)) for a in self.attention.tolist()],
            truncated=truncated,
            document_id=self.document_id,
        )


@dataclass
class Selection:
    """Slots chosen across documents: best first while each scores at least a threshold and they fit a budget."""

    candidates: list[tuple[int, Slot]]  # every (document index, slot), in document order
    lengths: list[int]  # each candidate's encoder token count
    kept: list[int]  # indices into `candidates` of the kept slots, in document order

    @classmethod
    def choose(
        cls, fields: list[RelevanceField], lengths: list[int], budget_tokens: int | None, threshold: float | None
    ) -> "Selection":
        """Selects from `fields` (`lengths`: token count of each of their slots, in order)."""
        candidates = [(d, slot) for d, f in enumerate(fields) for slot in f.slots]
        kept, used = [], 0
        for j in sorted(range(len(candidates)), key=lambda j: -candidates[j][1].score):
            if threshold is not None and candidates[j][1].score < threshold:
                break
            if budget_tokens is None or used + lengths[j] <= budget_tokens:
                kept.append(j)
                used += lengths[j]
        kept.sort(key=lambda j: (candidates[j][0], candidates[j][1].start))
        return cls(candidates, lengths, kept)

    def compressed(self) -> CompressedContext:
        """The kept slots as one context, documents separated by a blank line."""
        selected = [self.candidates[j] for j in self.kept]
        by_doc: dict[int, list[str]] = {}
        for d, slot in selected:
            by_doc.setdefault(d, []).append(slot.text)
        text = "\n\n".join(" ".join(parts) for parts in by_doc.values())
        return CompressedContext(text, selected, sum(self.lengths[j] for j in self.kept), sum(self.lengths))

    def pruned(self, fields: list[RelevanceField]) -> list[PrunedDocument]:
        """Each of `fields`' documents reduced to its kept slots, in input order."""
        kept_slots: list[list[Slot]] = [[] for _ in fields]
        kept_tokens, total_tokens = [0] * len(fields), [0] * len(fields)
        for j, (d, _) in enumerate(self.candidates):
            total_tokens[d] += self.lengths[j]
        for j in self.kept:
            d, slot = self.candidates[j]
            kept_slots[d].append(slot)
            kept_tokens[d] += self.lengths[j]
        return [
            PrunedDocument(
                " ".join(s.text for s in kept_slots[d]),
                kept_slots[d],
                f.score,
                kept_tokens[d],
                total_tokens[d],
                f.document_id,
            )
            for d, f in enumerate(fields)
        ]


def score_logit(probability: float) -> float:
    """The logit a score is the sigmoid of, within what float32 can tell apart (`LOGIT_LIMIT`)."""
    p = min(max(probability, 1e-12), 1.0 - 1e-12)
    return float(np.clip(np.log(p) - np.log1p(-p), -LOGIT_LIMIT, LOGIT_LIMIT))
