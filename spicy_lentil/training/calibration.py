"""Calibration of the slot and document scores, fitted on held-out data after training.

Training leaves the logits' level loosely tied to probability: the listwise losses only fix
differences, and hard negatives are far rarer among training rows than among the documents a user
scores. Platt scaling (Platt 1999; fitted on the validation splits and, where given, everyday-style
answer cases, as temperature scaling is fitted in Guo et al. 2017, "On Calibration of Modern Neural
Networks") maps a logit through `sigmoid(scale * logit + shift)`, the scale kept positive, so no
ranking the scaling reads changes.

What a score is a probability of: among the documents a user hands over with a question (the one
asked of, a related page that does not answer, an unrelated page), a document score is the
probability that the document answers; a slot score, that the slot answers. The slot score is
factored (`model.slot_probability`) as the document's probability times the slot's probability of
answering within an answering document, the second read from the slot's margin over the rest of its
document. The head's ranking within a document transfers across domains; the level of its
slot logits does not, so one Platt scaling of the raw slot logit keeps a domain's base rate and a
threshold of 0.5 that holds on the fitted domains fails on others (`benchmarks/calibration_transfer.py`
measures both, each domain left out of the fit in turn).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..corpus.first_stage import FirstStage
from ..corpus.index import CorpusIndex
from ..network.model import slot_margins, slot_probability
from ..network.scoring import fusion_gap
from ..results import LOGIT_LIMIT, score_logit
from .calibration_examples import ScoredExample, answer_case_examples, calibration_examples
from .data import RelevanceData
from .evaluation import AnswerCase, ranking_metrics

# First-stage trust weights tried, in units of the candidates' logit spread per unit of fusion spread.
TRUST_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
# Weights of a slot's reader logit in its slot logit tried (`fit_reader_mix`).
READER_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass
class Calibration:
    """The fitted scaling of each head and what it did on the data it was fitted on."""

    slot: tuple[float, float]  # (scale, shift) of slot logits
    document: tuple[float, float]  # (scale, shift) of document logits
    slot_examples: int  # labelled slots of the examples (`calibration_examples`, `answer_case_examples`)
    document_examples: int  # (query, document) examples
    # expected calibration error of slot scores (identity scalings, fitted ones), mean over datasets
    slot_ece: tuple[float, float]
    document_ece: tuple[float, float]  # the same for document scores
    # dataset -> head -> `threshold_report` of the calibrated scores on the examples it was fitted on
    per_dataset: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    first_stage_trust: "FirstStageTrust | None" = None  # fitted before the scaling, where a corpus ranking counts
    reader_mix: "ReaderMix | None" = None  # fitted first, where the model has a reader

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FirstStageTrust:
    """How far reranked document scores follow the first stage (`SpicyLentilModel.first_stage_trust`)."""

    weight: float  # raw-logit units lost per unit of fusion below the query's best candidate
    ndcg_at_10: tuple[float, float]  # mean over the fit's splits: (the head alone, with the trust)
    per_dataset: dict[str, tuple[float, float]] = field(default_factory=dict)  # dataset -> the same


@dataclass
class ReaderMix:
    """How the reader's logits join the head's (`SpicyLentilModel.reader_mix`) and what each slot weight gave."""

    slot_weight: float  # of a slot's reader logit, added to its slot logit
    doc_weight: float  # of the document's best reader logit, added to its document logit
    slot_map: dict[str, dict[str, float]] = field(default_factory=dict)  # slot weight -> dataset -> slot MAP


@contextmanager
def _mixing(model, weights: tuple[float, float]):
    """Within the block the model mixes its reader's logits in with `weights`."""
    saved = model.reader_mix.clone()
    model.reader_mix.copy_(torch.tensor(weights))
    try:
        yield
    finally:
        model.reader_mix.copy_(saved)


def reader_parts(head: list[ScoredExample], both: list[ScoredExample]) -> list[tuple[np.ndarray, float]]:
    """Per example, the reader's (slot logits, best slot logit): the same examples scored with reader weights
    (1, 1) less scored without the reader. Scores are read back as logits clipped at `LOGIT_LIMIT`, so a sum
    beyond it comes back short; head and reader logits sit well inside it."""
    return [(b.slot_logits - h.slot_logits, b.doc_logit - h.doc_logit) for h, b in zip(head, both)]


def mixed(head: list[ScoredExample], parts, weights: tuple[float, float]) -> list[ScoredExample]:
    """The examples' raw logits as the model computes them with reader weights `weights`."""
    return [
        ScoredExample(h.kind, h.relevant, h.doc_logit + weights[1] * best, h.slot_logits + weights[0] * slots,
                      h.slot_labels)
        for h, (slots, best) in zip(head, parts)
    ]


def fit_reader_mix(head: dict[str, list[ScoredExample]], both: dict[str, list[ScoredExample]]) -> ReaderMix:
    """The reader weights that best join its logits to the head's, every dataset weighing the same.

    The slot weight (one of `READER_GRID`, the smallest on a tie) is the one with the best mean slot MAP over
    the datasets' labelled answering documents: what ranks sentences within a document. The document weight
    is a logistic fit of the answering documents on (document logit, best reader logit), read as the second
    coefficient over the first (0 where either is not positive).

    Args:
        head: dataset -> examples scored without the reader.
        both: the same examples scored with reader weights (1, 1).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    parts = {name: reader_parts(head[name], both[name]) for name in head}

    def slot_map(weight: float) -> dict[str, float]:
        out = {}
        for name, examples in head.items():
            aps = [
                average_precision_score(e.slot_labels, e.slot_logits + weight * slots)
                for e, (slots, _) in zip(examples, parts[name])
                if e.relevant and e.slot_labels is not None and 0 < e.slot_labels.sum() < len(e.slot_labels)
            ]
            if aps:
                out[name] = float(np.mean(aps))
        return out

    maps = {w: slot_map(w) for w in READER_GRID}
    slot_weight = max(READER_GRID, key=lambda w: (np.mean(list(maps[w].values()) or [0.0]), -w))
    x, y, w = [], [], []
    for name, examples in head.items():
        x += [(e.doc_logit, best) for e, (_, best) in zip(examples, parts[name])]
        y += [int(e.relevant) for e in examples]
        w += [1.0 / len(examples)] * len(examples)
    doc_weight = 0.0
    if len(set(y)) == 2:
        fit = LogisticRegression(C=1e4, max_iter=1000).fit(np.array(x), np.array(y), sample_weight=np.array(w))
        own, reader = fit.coef_[0]
        doc_weight = float(reader / own) if own > 0 and reader > 0 else 0.0
    return ReaderMix(float(slot_weight), doc_weight, {str(k): v for k, v in maps.items()})


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
            found, positions, fields = lentil.retrieve_and_rerank(
                lentil.encode_query(query), index, query, candidates, first_stage
            )
            ids = [index.doc_ids[p] for p in positions]
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
    return (np.array([score_logit(f.score) for f in fields]) - shift) / scale


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


def fit_scaling(
    per_split: dict[str, list[ScoredExample]], given_document: bool
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The (slot, document) Platt scalings of examples pooled over splits, every split weighing the same.

    The document scaling is fitted on every example's document logit, each document counting once.
    Slot scaling: with `given_document`, on the labelled slots of relevant documents, reading each slot's
    margin over the rest of its document (`model.slot_margins`); without, on the raw logits of every
    labelled slot. Either way each document's slots together weigh as one document.
    """
    doc_x, doc_y, doc_w, slot_x, slot_y, slot_w = [], [], [], [], [], []
    for examples in per_split.values():
        if not examples:
            continue
        doc_x += [e.doc_logit for e in examples]
        doc_y += [int(e.relevant) for e in examples]
        doc_w += [1.0 / len(examples)] * len(examples)
        slotted = [e for e in examples if e.slot_labels is not None and len(e.slot_logits)]
        if given_document:
            slotted = [e for e in slotted if e.relevant]
        for e in slotted:
            raw = torch.as_tensor(e.slot_logits).unsqueeze(0)
            margins = slot_margins(raw, torch.ones_like(raw, dtype=torch.bool))[0].clamp(max=LOGIT_LIMIT).numpy()
            slot_x.append(margins if given_document else e.slot_logits)
            slot_y.append(e.slot_labels)
            slot_w.append(np.full(len(e.slot_logits), 1.0 / len(e.slot_logits) / len(slotted)))
    if not doc_x:
        return (1.0, 0.0), (1.0, 0.0)
    slot = platt(*(np.concatenate(a) for a in (slot_x, slot_y, slot_w))) if slot_x else (1.0, 0.0)
    return slot, platt(np.array(doc_x), np.array(doc_y), np.array(doc_w))


def example_probabilities(
    examples: list[ScoredExample], slot_scaling, doc_scaling, given_document: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Calibrated (slot scores, their labels, document scores, their labels) of examples, as the model
    computes them; slots of relevant documents without labels are left out."""
    slot_p, slot_y, doc_p = [], [], []
    for e in examples:
        doc_logit = doc_scaling[0] * e.doc_logit + doc_scaling[1]
        doc_p.append(_sigmoid(doc_logit))
        if e.slot_labels is None or not len(e.slot_logits):
            continue
        raw = torch.as_tensor(e.slot_logits, dtype=torch.float64).unsqueeze(0)
        mask = torch.ones_like(raw, dtype=torch.bool)
        scaling = torch.tensor(slot_scaling, dtype=torch.float64)
        slot_p.append(slot_probability(raw, mask, torch.tensor([doc_logit]), scaling, given_document)[0].numpy())
        slot_y.append(e.slot_labels)
    labels = np.array([int(e.relevant) for e in examples])
    if not slot_p:
        return np.zeros(0), np.zeros(0, dtype=np.int64), np.array(doc_p), labels
    return np.concatenate(slot_p), np.concatenate(slot_y), np.array(doc_p), labels


def threshold_report(probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """ECE; F1, precision and recall at `threshold`; the best F1 over every threshold with the threshold that
    gives it."""
    from sklearn.metrics import f1_score, precision_recall_curve, precision_score, recall_score

    labels = np.asarray(labels, dtype=np.int64)
    report = {"ece": expected_calibration_error(probabilities, labels), "examples": int(len(labels))}
    if labels.min(initial=0) == labels.max(initial=0):
        return {**report, "f1_at_threshold": 0.0, "precision_at_threshold": 0.0, "recall_at_threshold": 0.0,
                "best_f1": 0.0, "best_threshold": threshold}
    precision, recall, thresholds = precision_recall_curve(labels, probabilities)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))
    return {
        **report,
        "f1_at_threshold": float(f1_score(labels, probabilities >= threshold, zero_division=0)),
        "precision_at_threshold": float(precision_score(labels, probabilities >= threshold, zero_division=0)),
        "recall_at_threshold": float(recall_score(labels, probabilities >= threshold, zero_division=0)),
        "best_f1": float(f1[best]),
        "best_threshold": float(thresholds[best]),
    }


def fit_calibration(
    lentil,
    splits: list[tuple[RelevanceData, CorpusIndex]],
    candidates: int = 3,
    first_stage: FirstStage | None = None,
    ranked: Sequence[str] = (),
    ranking_candidates: int = 30,
    answer_cases: dict[str, list[AnswerCase]] | None = None,
) -> Calibration:
    """Fits and installs the scaling of `lentil`'s slot and document heads on held-out splits of one or more datasets.

    The examples are the documents a user meets (`calibration_examples`, and `answer_case_examples` of
    everyday-style cases), every dataset weighing the same however many examples it has: one scaling
    whose 0.5 means the same on each of them. A model with a reader first gets its reader weights
    (`fit_reader_mix`). Where a split's corpus ranking counts, the first-stage trust is fitted next
    (`fit_first_stage_trust`); otherwise the model's trust is kept.

    Args:
        lentil: the `SpicyLentil` to calibrate, changed in place.
        splits: (held-out split, its corpus index) per dataset.
        candidates: first-stage documents per query among which the related non-answering one is found.
        ranked: names of the datasets whose corpus ranking counts.
        ranking_candidates: first-stage documents reranked per query to fit the trust.
        answer_cases: name -> answer cases (`evaluation.read_answer_cases`), each set fitted on as one more
            dataset: questions over short paragraphs, the text users hand over that no labelled split is.

    Raises:
        ValueError: answer cases named like one of the splits.
    """
    clash = sorted(set(answer_cases or {}) & {data.name for data, _ in splits})
    if clash:
        raise ValueError(f"answer cases named like a split: {clash}; name them apart")
    model = lentil.model

    def examples() -> dict[str, list[ScoredExample]]:
        per_split = {
            data.name: calibration_examples(lentil, data, index, candidates, first_stage) for data, index in splits
        }
        return per_split | {name: answer_case_examples(lentil, cases) for name, cases in (answer_cases or {}).items()}

    mix = None
    if model.reader is not None:
        # Examples are scored alone (no first stage), so the trust fitted next does not change them.
        with _mixing(model, (0.0, 0.0)):
            head = examples()
        with _mixing(model, (1.0, 1.0)):
            both = examples()
        mix = fit_reader_mix(head, both)
        model.reader_mix.copy_(torch.tensor([mix.slot_weight, mix.doc_weight]))
        weights = (mix.slot_weight, mix.doc_weight)
        per_split = {name: mixed(head[name], reader_parts(head[name], both[name]), weights) for name in head}
    ranked_splits = [(data, index) for data, index in splits if data.name in ranked]
    trust = None
    if ranked_splits:
        trust = fit_first_stage_trust(lentil, ranked_splits, ranking_candidates, first_stage)
    if mix is None:
        per_split = examples()
    given_document = model.config.slot_given_document
    slot_scaling, doc_scaling = fit_scaling(per_split, given_document)
    model.slot_calibration.copy_(torch.tensor(slot_scaling))
    model.doc_calibration.copy_(torch.tensor(doc_scaling))

    def reports(slot, doc) -> dict[str, dict[str, dict[str, float]]]:
        out = {}
        for name, examples in per_split.items():
            slot_p, slot_y, doc_p, doc_y = example_probabilities(examples, slot, doc, given_document)
            out[name] = {"slot": threshold_report(slot_p, slot_y), "document": threshold_report(doc_p, doc_y)}
        return out

    before, after = reports((1.0, 0.0), (1.0, 0.0)), reports(slot_scaling, doc_scaling)

    def mean_ece(report, head: str) -> float:
        return float(np.mean([r[head]["ece"] for r in report.values()]))

    return Calibration(
        slot_scaling,
        doc_scaling,
        sum(r["slot"]["examples"] for r in after.values()),
        sum(r["document"]["examples"] for r in after.values()),
        (mean_ece(before, "slot"), mean_ece(after, "slot")),
        (mean_ece(before, "document"), mean_ece(after, "document")),
        after,
        trust,
        mix,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
