"""Platt scaling of the slot and document logits, fitted on held-out data after training.

Training leaves the logits' level loosely tied to probability: the listwise losses only fix
differences, and hard negatives are far rarer among training rows than among the documents a user
scores. Platt scaling (Platt 1999; fitted on the validation split, as temperature scaling is in
Guo et al. 2017, "On Calibration of Modern Neural Networks") maps each head's logit through
`sigmoid(scale * logit + shift)`: two numbers per head, the scale kept positive, so every ranking
the model makes is unchanged and only the meaning of a score such as 0.7 moves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .data import RelevanceData
from .evaluation import slot_labels
from .index import CorpusIndex
from .retrieval import FirstStage

_LOGIT_LIMIT = 16.0  # float32 sigmoid saturates beyond this; inverted scores are clipped here


@dataclass
class Calibration:
    """The fitted scaling of each head and what it did on the data it was fitted on."""

    slot: tuple[float, float]  # (scale, shift) of slot logits
    document: tuple[float, float]  # (scale, shift) of document logits
    slot_examples: int  # slots the fit saw (labelled rationale pairs, and every slot of non-relevant candidates)
    document_examples: int  # (query, candidate) pairs the fit saw
    slot_ece: tuple[float, float]  # expected calibration error of slot scores (before, after)
    document_ece: tuple[float, float]  # the same for document scores

    def to_dict(self) -> dict:
        return asdict(self)


def platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(scale, shift) minimising the log loss of `sigmoid(scale * logit + shift)` against 0/1 labels.

    Returns the identity (1, 0) when the labels hold one class only, or when the best scale is not
    positive (the logits carry no usable signal there, and a negative scale would invert rankings).
    """
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels, dtype=np.int64)
    if labels.min(initial=1) == labels.max(initial=0):
        return 1.0, 0.0
    fit = LogisticRegression(C=1e4, max_iter=1000).fit(np.asarray(logits, dtype=np.float64).reshape(-1, 1), labels)
    scale, shift = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    return (scale, shift) if scale > 0 else (1.0, 0.0)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Share-weighted mean |accuracy - confidence| over equal-width probability bins (Naeini et al. 2015)."""
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if probabilities.size == 0:
        return 0.0
    which = np.minimum((probabilities * bins).astype(np.int64), bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(labels[members].mean() - probabilities[members].mean())
    return float(error)


def fit_calibration(lentil, data: RelevanceData, index: CorpusIndex, candidates: int = 30,
                    first_stage: FirstStage | None = None) -> Calibration:
    """Fits and installs Platt scaling of `lentil`'s slot and document heads on one split.

    The examples are what the model meets when reranking: each query's first-stage top
    `candidates` (judged relevant or not), plus its labelled documents. Document labels come from
    the qrels; slot labels from the slot qrels of relevant documents, and 0 for every slot of a
    candidate that is not relevant. Relevant documents without slot labels add no slot examples.

    Args:
        lentil: the `SpicyLentil` to calibrate, changed in place.
        data: the held-out split (its corpus must be `index`'s).
        index: the corpus index.
        candidates: first-stage documents per query.
    """
    model = lentil.model
    model.slot_calibration.copy_(torch.tensor([1.0, 0.0]))
    model.doc_calibration.copy_(torch.tensor([1.0, 0.0]))
    first_stage = first_stage or FirstStage()
    labels = slot_labels(data, index)
    doc_logits, doc_labels, slot_logits, slot_targets = [], [], [], []
    for query_id, query in data.queries.items():
        relevant = {d for d, rel in data.qrels.get(query_id, {}).items() if rel > 0}
        encoding = lentil._encode_query(query)
        signals = first_stage.signals(index, query, encoding.embedding.numpy())
        docs = first_stage.candidates(signals, candidates)
        ranked = set(docs.tolist())
        extra = [index.position[d] for d in relevant if d in index.position and index.position[d] not in ranked]
        docs = np.concatenate([docs, np.array(extra, dtype=np.int64)])
        fields = lentil.rerank_indexed(encoding, index, docs, first_stage.prior(signals, docs))
        for position, field in zip(docs, fields):
            doc_id = index.doc_ids[int(position)]
            doc_logits.append(_logit(field.score))
            doc_labels.append(int(doc_id in relevant))
            if doc_id in relevant:
                targets = labels.get((query_id, doc_id))
                if targets is None:
                    continue
            else:
                targets = [0] * len(field.slots)
            slot_logits.extend(_logit(s.score) for s in field.slots)
            slot_targets.extend(targets)
    doc_logits, doc_labels = np.array(doc_logits), np.array(doc_labels)
    slot_logits, slot_targets = np.array(slot_logits), np.array(slot_targets)
    slot_scaling, doc_scaling = platt(slot_logits, slot_targets), platt(doc_logits, doc_labels)
    model.slot_calibration.copy_(torch.tensor(slot_scaling))
    model.doc_calibration.copy_(torch.tensor(doc_scaling))

    def ece(logits: np.ndarray, targets: np.ndarray, scaling: tuple[float, float]) -> tuple[float, float]:
        after = 1.0 / (1.0 + np.exp(-(scaling[0] * logits + scaling[1])))
        return expected_calibration_error(1.0 / (1.0 + np.exp(-logits)), targets), expected_calibration_error(after, targets)

    return Calibration(slot_scaling, doc_scaling, len(slot_targets), len(doc_labels),
                       ece(slot_logits, slot_targets, slot_scaling), ece(doc_logits, doc_labels, doc_scaling))


def _logit(probability: float) -> float:
    p = min(max(probability, 1e-12), 1.0 - 1e-12)
    return float(np.clip(np.log(p) - np.log1p(-p), -_LOGIT_LIMIT, _LOGIT_LIMIT))
