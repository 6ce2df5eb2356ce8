"""What calibration is fitted and judged on: the documents a user hands over with a question
(`EXAMPLE_KINDS`), each scored alone as `SpicyLentil.fields` scores it and read back as raw logits (the
model's scalings set to the identity), since the scalings fitted on them (`calibration.fit_scaling`) map
raw logits. They come from a labelled split (`calibration_examples`) or from everyday-style answer cases
(`answer_case_examples`: a question over a short paragraph with its answer marked, and an unrelated paragraph).
"""

from __future__ import annotations

import itertools
import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Collection

import numpy as np
import torch

from ..corpus.first_stage import FirstStage
from ..corpus.index import CorpusIndex
from ..results import score_logit
from .data import RelevanceData
from .evaluation import AnswerCase


@dataclass
class ScoredExample:
    """One document as calibration sees it: the raw (uncalibrated) logits of a query's document, and labels."""

    kind: str  # one of EXAMPLE_KINDS: how the document came to the query
    relevant: bool  # the document answers the query (qrels)
    doc_logit: float  # the document head's raw logit
    slot_logits: np.ndarray  # (slots,) raw slot logits
    slot_labels: np.ndarray | None  # (slots,) 0/1 answer labels; None where a relevant document has none


# The documents a user hands over with a question: the one asked of, a related page the first stage finds
# that does not answer, an unrelated page, and (where a dataset has them) pages asked a question they
# do not answer.
EXAMPLE_KINDS = ("asked", "related", "unrelated", "unanswerable")


@contextmanager
def _raw_scores(model):
    """Within the block the model's scores are sigmoids of its raw logits (identity scaling, slot
    scores not factored), so `score_logit` of a score reads the raw logit back."""
    saved = model.slot_calibration.clone(), model.doc_calibration.clone(), model.config.slot_given_document
    model.slot_calibration.copy_(torch.tensor([1.0, 0.0]))
    model.doc_calibration.copy_(torch.tensor([1.0, 0.0]))
    model.config.slot_given_document = False
    try:
        yield
    finally:
        model.slot_calibration.copy_(saved[0])
        model.doc_calibration.copy_(saved[1])
        model.config.slot_given_document = saved[2]


def example_documents(
    lentil, data: RelevanceData, index: CorpusIndex, candidates: int = 3, first_stage: FirstStage | None = None
) -> list[tuple[str, str, str, str]]:
    """The documents a user meets with one split's questions: `(kind, query id, query, document id)`.

    Per query: its relevant documents ("asked"), the best non-relevant document among the first stage's
    top `candidates` ("related"), and one document outside them drawn at random, seeded by the query id
    ("unrelated"); then the split's unanswerable pairs.
    """
    first_stage = first_stage or FirstStage()
    picked = []
    for query_id in sorted(data.queries):
        query = data.queries[query_id]
        relevant = {d for d, rel in data.qrels.get(query_id, {}).items() if rel > 0}
        found = first_stage.retrieve(index, query, lentil.encode_query(query).embedding.numpy(), candidates)
        shown = {index.doc_ids[int(p)] for p in found.docs}
        related = [index.doc_ids[int(p)] for p in found.docs if index.doc_ids[int(p)] not in relevant][:1]
        draw = random.Random(query_id).sample(range(len(index)), min(len(index), len(shown) + len(relevant) + 1))
        unrelated = [index.doc_ids[p] for p in draw if index.doc_ids[p] not in shown | relevant][:1]
        picked += [("asked", query_id, query, d) for d in sorted(relevant) if d in index.position]
        picked += [("related", query_id, query, d) for d in related]
        picked += [("unrelated", query_id, query, d) for d in unrelated]
    picked += [("unanswerable", q, query, d) for q, query, d in data.unanswerable if d in index.position]
    return picked


def score_examples(
    lentil, data: RelevanceData, documents: list[tuple[str, str, str, str]], index: CorpusIndex | None = None
) -> list[ScoredExample]:
    """Raw logits and labels of `example_documents`, each document scored alone as `field` scores it: from
    `index` (built with `lentil`'s encoder) when given, else from the corpus text and its sentences.

    Slot labels come from the slot qrels where the document's own sentences are its slots (relevant
    documents without them get None) and are 0 on every slot of a document that is not relevant.
    """
    examples = []
    with _raw_scores(lentil.model):
        # One model call per query: `example_documents` lists each query's documents together.
        for (query_id, query), group in itertools.groupby(documents, key=lambda d: (d[1], d[2])):
            group = list(group)
            if index is not None:
                positions = [index.position[doc_id] for *_, doc_id in group]
                fields = lentil.rerank_indexed(lentil.encode_query(query), index, positions)
            else:
                rows = [data.corpus[doc_id] for *_, doc_id in group]
                given = [{k: r[k] for k in ("text", "title", "sentences") if k in r} for r in rows]
                fields = lentil.fields(query, given, show_progress_bar=False)
            for (kind, _, _, doc_id), scored in zip(group, fields):
                answers, lined_up = None, False
                if kind == "asked":
                    answers = data.slot_qrels.get((query_id, doc_id))
                    # the slotter kept the corpus's sentences as the slots
                    lined_up = len(data.corpus[doc_id].get("sentences") or []) == len(scored.slots)
                examples.append(_example(kind, scored, answers if lined_up else None))
    return examples


def answer_case_examples(lentil, cases: list[AnswerCase]) -> list[ScoredExample]:
    """Raw logits and labels of answer cases, scored from their sentences as `fields` scores them.

    Args:
        lentil: the `SpicyLentil` whose raw logits are read.
        cases: the cases (`evaluation.read_answer_cases`).

    Returns:
        Per case, in order: its paragraph ("asked", the answering sentences labelled 1), then its unrelated
        paragraph ("unrelated", every sentence labelled 0).
    """
    examples = []
    with _raw_scores(lentil.model):
        for case in cases:
            asked, unrelated = lentil.fields(
                case.query, [{"sentences": list(case.sentences)}, {"sentences": list(case.unrelated)}],
                show_progress_bar=False,
            )
            examples += [_example("asked", asked, set(case.answer)), _example("unrelated", unrelated, None)]
    return examples


def _example(kind: str, scored, answers: Collection[int] | None) -> ScoredExample:
    """A scored field as an example: an "asked" document's slots labelled by `answers` (None: no labels), every
    slot of any other document 0."""
    slots = np.array([score_logit(s.score) for s in scored.slots])
    labels = np.zeros(len(slots), dtype=np.int64)
    if kind == "asked":
        labels = np.array([int(i in answers) for i in range(len(slots))]) if answers else None
    return ScoredExample(kind, kind == "asked", score_logit(scored.score), slots, labels)


def calibration_examples(
    lentil, data: RelevanceData, index: CorpusIndex, candidates: int = 3, first_stage: FirstStage | None = None
) -> list[ScoredExample]:
    """`score_examples` of `example_documents`: what calibration is fitted and judged on."""
    return score_examples(lentil, data, example_documents(lentil, data, index, candidates, first_stage), index)
