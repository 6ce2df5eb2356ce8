"""Platt scaling of the slot and document logits, fitted on held-out data after training.

Training leaves the logits' level loosely tied to probability: the listwise losses only fix
differences, and hard negatives are far rarer among training rows than among the documents a user
scores. Platt scaling (Platt 1999; fitted on the validation split, as temperature scaling is in
Guo et al. 2017, "On Calibration of Modern Neural Networks") maps each head's logit through
`sigmoid(scale * logit + shift)`: two numbers per head, the scale kept positive, so every ranking
the model makes is unchanged and only the meaning of a score such as 0.7 moves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch

from .data import RelevanceData
from .evaluation import ranking_metrics, slot_labels
from .index import CorpusIndex
from .retrieval import FirstStage, fusion_gap

_LOGIT_LIMIT = 16.0  # float32 sigmoid saturates beyond this; inverted scores are clipped here
# First-stage trust weights tried, in units of the candidates' logit spread per unit of fusion spread.
TRUST_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass
class Calibration:
    """The fitted scaling of each head and what it did on the data it was fitted on."""

    slot: tuple[float, float]  # (scale, shift) of slot logits
    document: tuple[float, float]  # (scale, shift) of document logits
    slot_examples: int  # slots the fit saw (labelled rationale pairs, and every slot of non-relevant candidates)
    document_examples: int  # (query, candidate) pairs the fit saw
    slot_ece: tuple[float, float]  # expected calibration error of slot scores (before, after), datasets pooled equally
    document_ece: tuple[float, float]  # the same for document scores
    per_dataset: dict[str, dict[str, float]] = field(default_factory=dict)  # dataset -> ECE after, per head
    first_stage_trust: "FirstStageTrust | None" = None  # fitted before the scaling, where a corpus ranking counts

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FirstStageTrust:
    """How far reranked document scores follow the first stage (`SpicyLentilModel.first_stage_trust`)."""

    weight: float  # raw-logit units lost per unit of fusion below the query's best candidate
    ndcg_at_10: tuple[float, float]  # mean over the fit's splits: (the head alone, with the trust)
    per_dataset: dict[str, tuple[float, float]] = field(default_factory=dict)  # dataset -> the same


def fit_first_stage_trust(
    lentil,
    splits: list[tuple[RelevanceData, CorpusIndex]],
    candidates: int = 30,
    first_stage: FirstStage | None = None,
) -> FirstStageTrust:
    """Fits and installs the weight of the first-stage fusion in `lentil`'s document logits.

    Each query's first-stage top `candidates` is reranked once; the weight is the one of `TRUST_GRID`
    (scaled by the spread of the head's logits over that of the fusion) with the best mean nDCG@10
    over the splits, the smallest on a tie.

    Args:
        lentil: the `SpicyLentil` whose trust is fitted, changed in place (its other weights are not).
        splits: (held-out split, its corpus index) per dataset whose corpus ranking counts.
        candidates: first-stage documents reranked per query.
    """
    first_stage = first_stage or FirstStage()
    trust = lentil.model.first_stage_trust
    trust.zero_()
    reranked = []  # per split: {query: (doc ids, head logits, fusion gaps)}
    for data, index in splits:
        queries = {}
        for query_id, query in data.queries.items():
            encoding = lentil.encode_query(query)
            found = first_stage.retrieve(index, query, encoding.embedding.numpy(), candidates)
            fields = lentil.rerank_indexed(encoding, index, found.docs, found.prior)
            ids = [index.doc_ids[int(d)] for d in found.docs]
            queries[query_id] = (ids, _head_logits(lentil, fields), fusion_gap(found.prior).astype(np.float64))
        reranked.append((data, queries))
    logits = np.concatenate([q[1] for _, queries in reranked for q in queries.values()])
    gaps = np.concatenate([q[2] for _, queries in reranked for q in queries.values()])
    # A head whose logits do not vary (it says nothing) still gets a unit: any trust then ranks by the fusion.
    unit = max(float(logits.std()), 1e-3) / max(float(gaps.std()), 1e-9)

    def ndcg(weight: float) -> dict[str, float]:
        return {
            data.name: ranking_metrics(
                data.qrels,
                {q: dict(zip(ids, (head - weight * gap).tolist())) for q, (ids, head, gap) in queries.items()},
            )["ndcg@10"]
            for data, queries in reranked
        }

    scores = {t: ndcg(t * unit) for t in TRUST_GRID}
    best = max(TRUST_GRID, key=lambda t: (np.mean(list(scores[t].values())), -t))
    trust.fill_(best * unit)
    return FirstStageTrust(
        best * unit,
        (float(np.mean(list(scores[0.0].values()))), float(np.mean(list(scores[best].values())))),
        {name: (scores[0.0][name], scores[best][name]) for name in scores[best]},
    )


def _head_logits(lentil, fields) -> np.ndarray:
    """The uncalibrated document logits behind reranked fields (scores under the model's document scaling)."""
    scale, shift = lentil.model.doc_calibration.tolist()
    return (np.array([_logit(f.score) for f in fields]) - shift) / scale


def platt(logits: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> tuple[float, float]:
    """(scale, shift) minimising the (weighted) log loss of `sigmoid(scale * logit + shift)` against 0/1 labels.

    Returns the identity (1, 0) when the labels hold one class only, or when the best scale is not
    positive (the logits carry no usable signal there, and a negative scale would invert rankings).
    """
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels, dtype=np.int64)
    if labels.min(initial=1) == labels.max(initial=0):
        return 1.0, 0.0
    fit = LogisticRegression(C=1e4, max_iter=1000).fit(
        np.asarray(logits, dtype=np.float64).reshape(-1, 1), labels, sample_weight=sample_weight
    )
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


@dataclass
class _Examples:
    """Raw logits and 0/1 labels of one split, per head."""

    doc_logits: list[float] = field(default_factory=list)
    doc_labels: list[int] = field(default_factory=list)
    slot_logits: list[float] = field(default_factory=list)
    slot_labels: list[int] = field(default_factory=list)


def calibration_examples(
    lentil, data: RelevanceData, index: CorpusIndex, candidates: int = 30, first_stage: FirstStage | None = None
) -> _Examples:
    """What the model meets when reranking one split, as (logit, label) pairs per head.

    Each query's first-stage top `candidates` (judged relevant or not), reranked with their first-stage
    prior, plus its relevant documents outside them, scored alone: document labels from the qrels;
    slot labels from the slot qrels of relevant documents, and 0 for every slot of a candidate that
    is not relevant. Relevant documents without slot labels add no slot examples. Unanswerable pairs
    add their document (not relevant) and all its slots (0).
    """
    first_stage = first_stage or FirstStage()
    labels = slot_labels(data, index)
    examples = _Examples()

    def add(scored, relevant: bool, targets: list[int] | None) -> None:
        examples.doc_logits.append(_logit(scored.score))
        examples.doc_labels.append(int(relevant))
        if targets is not None:
            examples.slot_logits.extend(_logit(s.score) for s in scored.slots)
            examples.slot_labels.extend(targets)

    for query_id, query in data.queries.items():
        relevant = {d for d, rel in data.qrels.get(query_id, {}).items() if rel > 0}
        encoding = lentil.encode_query(query)
        found = first_stage.retrieve(index, query, encoding.embedding.numpy(), candidates)
        fields = lentil.rerank_indexed(encoding, index, found.docs, found.prior)
        for position, reranked in zip(found.docs, fields):
            doc_id = index.doc_ids[int(position)]
            is_relevant = doc_id in relevant
            add(reranked, is_relevant, labels.get((query_id, doc_id)) if is_relevant else [0] * len(reranked.slots))
        # Relevant documents the first stage did not hand over are scored alone, as `field` scores a document:
        # a first-stage gap far beyond any candidate list's would otherwise stand for all of them.
        retrieved = {index.doc_ids[int(p)] for p in found.docs}
        missed = [index.position[d] for d in sorted(relevant - retrieved) if d in index.position]
        for position, reranked in zip(missed, lentil.rerank_indexed(encoding, index, missed) if missed else []):
            add(reranked, True, labels.get((query_id, index.doc_ids[position])))
    for _, query, doc_id in data.unanswerable:
        if doc_id in index.position:
            reranked = lentil.rerank_indexed(lentil.encode_query(query), index, [index.position[doc_id]])[0]
            add(reranked, False, [0] * len(reranked.slots))
    return examples


def fit_calibration(
    lentil,
    splits: list[tuple[RelevanceData, CorpusIndex]],
    candidates: int = 30,
    first_stage: FirstStage | None = None,
    ranked: Sequence[str] = (),
    ranking_candidates: int = 30,
) -> Calibration:
    """Fits and installs Platt scaling of `lentil`'s slot and document heads on held-out splits of one or more datasets.

    Each split's examples (`calibration_examples`) are weighted so that every dataset counts the same
    however many examples it has: one scaling whose 0.5 means the same on each of them. Where a
    split's corpus ranking counts, the first-stage trust is fitted first (`fit_first_stage_trust`);
    otherwise the model's trust is kept.

    Args:
        lentil: the `SpicyLentil` to calibrate, changed in place.
        splits: (held-out split, its corpus index) per dataset.
        candidates: first-stage documents per query.
        ranked: names of the datasets whose corpus ranking counts.
        ranking_candidates: first-stage documents reranked per query to fit the trust.
    """
    model = lentil.model
    model.slot_calibration.copy_(torch.tensor([1.0, 0.0]))
    model.doc_calibration.copy_(torch.tensor([1.0, 0.0]))
    ranked_splits = [(data, index) for data, index in splits if data.name in ranked]
    trust = None
    if ranked_splits:
        trust = fit_first_stage_trust(lentil, ranked_splits, ranking_candidates, first_stage)
    per_split = {
        data.name: calibration_examples(lentil, data, index, candidates, first_stage) for data, index in splits
    }

    def pooled(logits: str, labels: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = [(np.array(getattr(e, logits)), np.array(getattr(e, labels))) for e in per_split.values()]
        parts = [(x, y) for x, y in parts if len(y)]
        weights = [np.full(len(y), 1.0 / len(y)) for _, y in parts]
        return (
            np.concatenate([x for x, _ in parts]),
            np.concatenate([y for _, y in parts]),
            np.concatenate(weights) * sum(len(y) for _, y in parts) / max(1, len(parts)),
        )

    slot_logits, slot_targets, slot_weights = pooled("slot_logits", "slot_labels")
    doc_logits, doc_labels, doc_weights = pooled("doc_logits", "doc_labels")
    slot_scaling = platt(slot_logits, slot_targets, slot_weights)
    doc_scaling = platt(doc_logits, doc_labels, doc_weights)
    model.slot_calibration.copy_(torch.tensor(slot_scaling))
    model.doc_calibration.copy_(torch.tensor(doc_scaling))

    def ece(logits, targets, scaling: tuple[float, float]) -> float:
        return expected_calibration_error(_sigmoid(scaling[0] * np.asarray(logits) + scaling[1]), np.asarray(targets))

    def mean_ece(logits: str, labels: str, scaling: tuple[float, float]) -> float:
        return float(np.mean([ece(getattr(e, logits), getattr(e, labels), scaling) for e in per_split.values()]))

    identity = (1.0, 0.0)
    return Calibration(
        slot_scaling,
        doc_scaling,
        len(slot_targets),
        len(doc_labels),
        (mean_ece("slot_logits", "slot_labels", identity), mean_ece("slot_logits", "slot_labels", slot_scaling)),
        (mean_ece("doc_logits", "doc_labels", identity), mean_ece("doc_logits", "doc_labels", doc_scaling)),
        {
            name: {
                "slot": ece(e.slot_logits, e.slot_labels, slot_scaling),
                "document": ece(e.doc_logits, e.doc_labels, doc_scaling),
            }
            for name, e in per_split.items()
        },
        trust,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(probability: float) -> float:
    p = min(max(probability, 1e-12), 1.0 - 1e-12)
    return float(np.clip(np.log(p) - np.log1p(-p), -_LOGIT_LIMIT, _LOGIT_LIMIT))
