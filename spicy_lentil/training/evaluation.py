"""Evaluation: ranking over the whole corpus and slot ranking on labelled pairs, model and baselines side by side.

Ranking metrics (nDCG@10, Recall@100, MRR@10) and slot MAP / MRR come from `ir-measures`
(trec_eval's implementations); slot AUC from scikit-learn.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import ir_measures
import numpy as np
from ir_measures import AP, RR, R, nDCG

from ..corpus.first_stage import FirstStage, bm25_slot_scores
from ..corpus.index import CorpusIndex
from ..errors import DataError
from .data import RelevanceData

RANKING_MEASURES = {"ndcg@10": nDCG @ 10, "recall@100": R @ 100, "mrr@10": RR @ 10}
SLOT_MEASURES = {"slot_map": AP, "slot_mrr": RR}
Run = dict[str, dict[str, float]]


def ranking_metrics(qrels: dict[str, dict[str, int]], run: Run) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the judged queries (a query missing from the run scores 0)."""
    per_query = {name: {q: 0.0 for q in qrels} for name in RANKING_MEASURES}
    lookup = {measure: name for name, measure in RANKING_MEASURES.items()}
    for metric in ir_measures.iter_calc(list(RANKING_MEASURES.values()), qrels, run):
        per_query[lookup[metric.measure]][metric.query_id] = metric.value
    return {name: float(np.mean(list(values.values()))) if values else 0.0 for name, values in per_query.items()}


def read_run(path: str | Path) -> Run:
    """A TREC run file (as `Evaluation.write_runs` writes it) as `{query_id: {doc_id: score}}`."""
    run: Run = {}
    for row in ir_measures.read_trec_run(str(path)):
        run.setdefault(row.query_id, {})[row.doc_id] = row.score
    return run


def slot_metrics(labels: dict[str, list[int]], scores: dict[str, list[float]]) -> dict[str, float]:
    """Slot MAP, MRR and AUC over labelled (query, document) pairs.

    Args:
        labels: pair key -> 0/1 label per slot, in slot order.
        scores: pair key -> score per slot, same order.
    """
    from sklearn.metrics import roc_auc_score

    pairs = [k for k in labels if k in scores and any(labels[k])]
    qrels = {k: {str(i): int(v) for i, v in enumerate(labels[k])} for k in pairs}
    run = {k: {str(i): float(s) for i, s in enumerate(scores[k])} for k in pairs}
    result = {name: 0.0 for name in SLOT_MEASURES}
    if pairs:
        aggregate = ir_measures.calc_aggregate(list(SLOT_MEASURES.values()), qrels, run)
        result = {name: float(aggregate[measure]) for name, measure in SLOT_MEASURES.items()}
    aucs = [roc_auc_score(labels[k], scores[k]) for k in pairs if not all(labels[k])]
    result["slot_auc"] = float(np.mean(aucs)) if aucs else 0.0
    result["slot_pairs"] = len(pairs)
    return result


def slot_labels(data: RelevanceData, index: CorpusIndex) -> dict[tuple[str, str], list[int]]:
    """0/1 per indexed slot for every labelled pair whose document kept the dataset's own sentence split."""
    labels = {}
    for (query_id, doc_id), slots in data.slot_qrels.items():
        if query_id not in data.queries or doc_id not in index.position:
            continue
        position = index.position[doc_id]
        n = len(index.slots(position)[0])
        if len(data.corpus[doc_id].get("sentences", [])) != n:
            continue  # the slotter cut this document differently; its slot indices do not line up
        labels[(query_id, doc_id)] = [int(i in slots) for i in range(n)]
    return labels


@dataclass
class Evaluation:
    """Everything one `eval` run measured."""

    dataset: str
    split: str
    queries: int
    model: dict[str, float]
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)  # system -> its ranking of every query, for per-query analysis

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "queries": self.queries,
            "model": self.model,
            "baselines": self.baselines,
            "seconds": self.seconds,
        }

    def write_runs(self, folder: str | Path) -> list[Path]:
        """Writes each system's ranking as a TREC run file (`<system>.run`), readable by trec_eval, ir-measures
        and ranx."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for system, run in self.runs.items():
            path = folder / f"{system}.run"
            with open(path, "w", encoding="utf-8") as handle:
                for query_id, scores in run.items():
                    ranked = sorted(scores.items(), key=lambda item: -item[1])
                    handle.writelines(
                        f"{query_id} Q0 {doc_id} {rank} {score:.8g} {system}\n"
                        for rank, (doc_id, score) in enumerate(ranked, start=1)
                    )
            paths.append(path)
        return paths

    def table(self) -> str:
        """A plain-text table, one row per system."""
        rows = {"spicy_lentil": self.model, **self.baselines}
        columns = list(RANKING_MEASURES) + ["slot_map", "slot_mrr", "slot_auc"]
        lines = [f"{'system':<24}" + "".join(f"{c:>12}" for c in columns)]
        for name, metrics in rows.items():
            cells = "".join(f"{metrics[c]:>12.4f}" if c in metrics else f"{'-':>12}" for c in columns)
            lines.append(f"{name:<24}" + cells)
        return "\n".join(lines)


def evaluate(
    lentil,
    data: RelevanceData,
    index: CorpusIndex,
    candidates: int = 100,
    baselines: bool = False,
    first_stage: FirstStage | None = None,
    bi_encoder=None,
    sentence_bi_encoder=None,
    show_progress_bar: bool = True,
) -> Evaluation:
    """Ranks the split's queries over the whole corpus (first stage, then rerank) and scores labelled slots.

    Args:
        lentil: the `SpicyLentil` model.
        data: queries and judgements.
        index: the corpus index (built with the model's encoder).
        candidates: first-stage documents reranked per query.
        baselines: also measure BM25, dense, fusion (and `bi_encoder`, a sentence-transformers
            model, when given) on the same queries and corpus.
        sentence_bi_encoder: with `baselines`, a `SentenceBiEncoder` whose cosine ranks the labelled slots.
    """
    from tqdm.auto import tqdm

    first_stage = first_stage or FirstStage()
    labels = slot_labels(data, index)
    labelled = {}
    for query_id, doc_id in labels:
        labelled.setdefault(query_id, []).append(doc_id)
    runs: dict[str, Run] = {"spicy_lentil": {}}
    if baselines:
        runs.update({"bm25": {}, "dense": {}, "dense_best_slot": {}, "fusion": {}})
    slot_scores: dict[str, dict[str, list[float]]] = {
        "spicy_lentil": {},
        "bm25": {},
        "dense": {},
        "bi_encoder_sentences": {},
    }
    seconds = {"encode_queries": 0.0, "retrieve_and_rerank": 0.0}
    start = time.perf_counter()
    for query_id, query in tqdm(data.queries.items(), desc="eval", unit="query", disable=not show_progress_bar):
        t0 = time.perf_counter()
        query_encoding = lentil.encode_query(query)
        q = query_encoding.embedding.numpy()
        t1 = time.perf_counter()
        asked = [index.position[d] for d in labelled.get(query_id, [])]
        found, positions, fields = lentil.retrieve_and_rerank(
            query_encoding, index, query, candidates, first_stage, asked
        )
        signals, shown = found.signals, len(found.docs)  # the missed labelled documents follow the candidates
        runs["spicy_lentil"][query_id] = {index.doc_ids[p]: f.score for p, f in zip(positions[:shown], fields)}
        by_doc = {index.doc_ids[p]: f for p, f in zip(positions, fields)}
        seconds["encode_queries"] += t1 - t0
        seconds["retrieve_and_rerank"] += time.perf_counter() - t1
        for doc_id in labelled.get(query_id, []):
            key = f"{query_id}|{doc_id}"
            slot_scores["spicy_lentil"][key] = [s.score for s in by_doc[doc_id].slots]
            if baselines:
                slot_scores["dense"][key] = (index.document_encoding(index.position[doc_id]).slots.numpy() @ q).tolist()
                slot_scores["bm25"][key] = bm25_slot_scores(query, [s.text for s in by_doc[doc_id].slots])
                if sentence_bi_encoder is not None:
                    slot_scores["bi_encoder_sentences"][key] = sentence_bi_encoder.slot_scores(
                        query, [s.text for s in by_doc[doc_id].slots]
                    )
        if baselines:
            for name, signal in (
                ("bm25", "bm25"),
                ("dense", "dense_doc"),
                ("dense_best_slot", "dense_slot"),
                ("fusion", "fusion"),
            ):
                runs[name][query_id] = _top(signals[signal], index.doc_ids, candidates)
    seconds["total"] = time.perf_counter() - start
    label_map = {f"{q}|{d}": v for (q, d), v in labels.items()}
    model_metrics = {
        **ranking_metrics(data.qrels, runs["spicy_lentil"]),
        **slot_metrics(label_map, slot_scores["spicy_lentil"]),
    }
    result = Evaluation(data.name, data.split, len(data.queries), model_metrics, seconds=seconds, runs=runs)
    if baselines:
        for name in ("bm25", "dense", "dense_best_slot", "fusion"):
            metrics = ranking_metrics(data.qrels, runs[name])
            if name in slot_scores:
                metrics.update(slot_metrics(label_map, slot_scores[name]))
            result.baselines[name] = metrics
        if sentence_bi_encoder is not None:
            result.baselines["bi_encoder_sentences"] = slot_metrics(label_map, slot_scores["bi_encoder_sentences"])
        if bi_encoder is not None:
            t0 = time.perf_counter()
            runs["bi_encoder_finetuned"] = bi_encoder.run(data, candidates)
            result.baselines["bi_encoder_finetuned"] = ranking_metrics(data.qrels, runs["bi_encoder_finetuned"])
            seconds["bi_encoder"] = time.perf_counter() - t0
    return result


def _top(scores: np.ndarray, doc_ids: list[str], n: int) -> dict[str, float]:
    n = min(n, len(scores))
    part = np.argpartition(-scores, n - 1)[:n]
    return {doc_ids[int(i)]: float(scores[i]) for i in part}


@dataclass
class AnswerCase:
    """A question over a short paragraph with its answering sentence(s) marked, and an unrelated paragraph."""

    id: str
    domain: str
    query: str
    sentences: list[str]  # the paragraph is these joined by one space
    answer: list[int]  # 0-based indices of the answering sentences
    unrelated: list[str]  # the sentences of a paragraph (another case's) that does not answer the query

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def read_answer_cases(path: str | Path) -> list[AnswerCase]:
    """Reads `data/everyday.jsonl`-style cases (`{"id", "domain", "query", "sentences", "answer", "unrelated"}`,
    `unrelated` naming another case).

    Raises:
        DataError: a missing or unreadable file, or a row (named by its line number) that is not such a case: no
            query or sentence text, answer indices outside the sentences, an id used twice, or an `unrelated` case
            that is missing or the case itself.
    """
    import json

    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"answer cases cannot be read: {path} ({error})") from None
    rows: dict[str, tuple[int, tuple, str]] = {}  # id -> (line number, AnswerCase fields but the last, unrelated id)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            query, sentences, answer = row["query"], row["sentences"], row["answer"]
            texts = isinstance(sentences, list) and sentences and all(_text(x) for x in sentences)
            indices = isinstance(answer, list) and answer and all(
                type(i) is int and 0 <= i < len(sentences) for i in answer
            )
            if not (_text(query) and texts and indices):
                raise ValueError("query must be text, sentences a non-empty list of texts, answer a non-empty "
                                 "list of their indices")
            case_id, domain, unrelated = str(row["id"]), str(row["domain"]), str(row["unrelated"])
            if case_id in rows:
                raise ValueError(f"id {case_id!r} is already the case of line {rows[case_id][0]}")
            if unrelated == case_id:
                raise ValueError("a case cannot be its own unrelated paragraph")
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(f"{path}:{number}: not an answer case ({error})") from None
        rows[case_id] = (number, (case_id, domain, query, sentences, answer), unrelated)
    for number, _, other in rows.values():
        if other not in rows:
            raise DataError(f"{path}:{number}: unrelated case {other!r} not in the file")
    return [AnswerCase(*fields, rows[other][1][3]) for _, fields, other in rows.values()]


def _text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def answer_case_metrics(cases: list[AnswerCase], slot_scores, document_score=None, threshold: float = 0.5) -> dict:
    """How often the answering sentence is ranked first (and, for calibrated scores, clears `threshold`).

    Args:
        cases: the cases.
        slot_scores: (query, sentences) -> one score per sentence.
        document_score: (query, sentences) -> the paragraph's score in [0, 1], or None for a system without one;
            then "above unrelated" compares the best sentence scores of the two paragraphs.
        threshold: the score a user would trust as "answers the query".

    Returns:
        Shares of cases: `answer_first`, `answer_above_threshold`, `paragraph_above_threshold`,
        `above_unrelated` (the last three None where `document_score` is None, except `above_unrelated`).
    """
    first = answer_high = paragraph_high = above = 0
    for case in cases:
        scores = list(slot_scores(case.query, case.sentences))
        best = max(range(len(scores)), key=scores.__getitem__)
        first += best in case.answer
        answer_high += max(scores[i] for i in case.answer) >= threshold
        if document_score is not None:
            own, other = document_score(case.query, case.sentences), document_score(case.query, case.unrelated)
            paragraph_high += own >= threshold
        else:
            own, other = max(scores), max(slot_scores(case.query, case.unrelated))
        above += own > other
    n = max(1, len(cases))
    calibrated = document_score is not None
    return {
        "cases": len(cases),
        "answer_first": first / n,
        "answer_above_threshold": answer_high / n if calibrated else None,
        "paragraph_above_threshold": paragraph_high / n if calibrated else None,
        "above_unrelated": above / n,
    }
